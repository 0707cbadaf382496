"""Tasks: what each one predicts, from which label, and how its predictions and labels become one loss.

A task is declared in the configuration (name, type, label column, weight). "retrieval" scores users against
items with the two towers; "binary" and "regression" are ranking heads on a (user, item) pair.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import keras_rs

RETRIEVAL, BINARY, REGRESSION = "retrieval", "binary", "regression"
TASK_TYPES = (RETRIEVAL, BINARY, REGRESSION)


@dataclasses.dataclass(frozen=True)
class Task:
    """One training objective.

    Attributes:
        name: The task's name; also the name of its model output and of its label after Transform.
        type: "retrieval", "binary" or "regression".
        label: The raw event column holding the label. For retrieval it weights the positives (e.g. `clicked`:
            only clicked events are retrieval targets); None makes every event a positive.
        weight: The task's weight in the summed loss; 0 removes the task from training.
    """

    name: str
    type: str
    label: str | None
    weight: float = 1.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Task:
        return cls(**config)


def ranking_tasks(tasks: list[Task]) -> list[Task]:
    return [task for task in tasks if task.type != RETRIEVAL]


def retrieval_task(tasks: list[Task]) -> Task | None:
    found = [task for task in tasks if task.type == RETRIEVAL]
    return found[0] if found else None


def retrieval_loss(user_embeddings: Any, item_embeddings: Any, item_ids: Any, weights: Any, temperature: float,
                   log_sampling_probability: Any | None = None) -> Any:
    """In-batch softmax: each user's own item against every other item of the batch.

    Rows are weighted by `weights` (e.g. the click label). Other rows holding the same item are masked out, so
    an item is never its own negative. (KerasRS 0.4's RemoveAccidentalHits adds a denormal ~1e-40 to those
    logits, which changes nothing: keras-team/keras-rs#206; our test of this loss catches it.) With
    `log_sampling_probability` (each batch item's log frequency), the logits get the logQ correction (KerasRS
    SamplingProbabilityCorrection): in-batch negatives are drawn by popularity, and without the correction the
    model learns to push popular items down. Embeddings are L2-normalised; `temperature` sets the sharpness.
    """
    users = keras.ops.normalize(user_embeddings, axis=-1)
    items = keras.ops.normalize(item_embeddings, axis=-1)
    logits = keras.ops.matmul(users, keras.ops.transpose(items)) / temperature
    diagonal = keras.ops.eye(keras.ops.shape(logits)[0], dtype="bool")
    if log_sampling_probability is not None:
        probability = keras.ops.exp(keras.ops.cast(log_sampling_probability, logits.dtype))
        logits = keras_rs.layers.SamplingProbabilityCorrection()(
            logits, keras.ops.broadcast_to(keras.ops.expand_dims(probability, 0), keras.ops.shape(logits)))
    same_item = keras.ops.equal(keras.ops.expand_dims(item_ids, 1), keras.ops.expand_dims(item_ids, 0))
    logits = keras.ops.where(keras.ops.logical_and(same_item, keras.ops.logical_not(diagonal)), -1e9, logits)
    per_row = keras.losses.categorical_crossentropy(keras.ops.cast(diagonal, logits.dtype), logits,
                                                    from_logits=True)
    weights = keras.ops.cast(weights, per_row.dtype)
    return keras.ops.sum(per_row * weights) / keras.ops.maximum(keras.ops.sum(weights), 1.0)


def binary_loss(labels: Any, logits: Any) -> Any:
    """Binary cross-entropy of a binary head."""
    labels = keras.ops.cast(labels, logits.dtype)
    return keras.ops.mean(keras.losses.binary_crossentropy(
        keras.ops.expand_dims(labels, -1), keras.ops.expand_dims(logits, -1), from_logits=True))


def regression_loss(labels: Any, predictions: Any) -> Any:
    """Mean squared error of a regression head."""
    return keras.ops.mean(keras.ops.square(keras.ops.cast(labels, predictions.dtype) - predictions))
