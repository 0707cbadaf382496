"""Tasks: what each one predicts, from which label, and how its predictions and labels become one loss.

A task is declared in the configuration (name, type, label column, weight). "retrieval" scores users against
items with the two towers; "binary" and "regression" are ranking heads on a (user, item) pair.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import keras_rs
import tensorflow as tf

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
        given: The name of a binary task this one is conditioned on, or None. Its loss counts only the events
            whose given label is 1 (e.g. a like given a click).
        entire_space: With `given` (binary tasks): ESMM instead. The prediction is p(given) * p(this | given),
            trained on every event, so a sparse post-click label learns from every exposure.
        label_transform: "none" or "log1p" (applied by Transform; predictions are on the transformed scale).
        label_range: [min, max] of the raw label (checked by the data gate), or None.
    """

    name: str
    type: str
    label: str | None
    weight: float = 1.0
    given: str | None = None
    entire_space: bool = False
    label_transform: str = "none"
    label_range: tuple[float, float] | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Task:
        values = dict(config)
        if values.get("label_range") is not None:
            values["label_range"] = tuple(values["label_range"])
        return cls(**values)

    @property
    def masked(self) -> bool:
        """Whether the loss counts only the events whose given label is 1."""
        return self.given is not None and not self.entire_space


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
    Under a distribution strategy the batch is the global one: each replica's users score the items of every
    replica, so the negatives do not depend on how many replicas share the batch.
    """
    users = keras.ops.normalize(user_embeddings, axis=-1)
    items, start = _all_replicas(keras.ops.normalize(item_embeddings, axis=-1))
    all_item_ids, _ = _all_replicas(item_ids)
    logits = keras.ops.matmul(users, keras.ops.transpose(items)) / temperature
    own = keras.ops.one_hot(start + keras.ops.arange(keras.ops.shape(users)[0]), keras.ops.shape(items)[0],
                            dtype="bool")
    if log_sampling_probability is not None:
        log_q, _ = _all_replicas(keras.ops.cast(log_sampling_probability, logits.dtype))
        logits = keras_rs.layers.SamplingProbabilityCorrection()(
            logits, keras.ops.broadcast_to(keras.ops.expand_dims(keras.ops.exp(log_q), 0), keras.ops.shape(logits)))
    same_item = keras.ops.equal(keras.ops.expand_dims(item_ids, 1), keras.ops.expand_dims(all_item_ids, 0))
    logits = keras.ops.where(keras.ops.logical_and(same_item, keras.ops.logical_not(own)), -1e9, logits)
    per_row = keras.losses.categorical_crossentropy(keras.ops.cast(own, logits.dtype), logits, from_logits=True)
    weights = keras.ops.cast(weights, per_row.dtype)
    return _global_mean(keras.ops.sum(per_row * weights), keras.ops.sum(weights))


def binary_loss(labels: Any, logits: Any, weights: Any | None = None) -> Any:
    """Binary cross-entropy of a binary head, from its logits; with `weights` (e.g. the given task's label) the
    weighted mean, so rows of weight 0 count for nothing."""
    labels = keras.ops.cast(labels, logits.dtype)
    per_row = keras.losses.binary_crossentropy(
        keras.ops.expand_dims(labels, -1), keras.ops.expand_dims(logits, -1), from_logits=True)
    return _weighted_mean(per_row, weights)


def entire_space_loss(labels: Any, probabilities: Any) -> Any:
    """Binary cross-entropy of an ESMM output, p(given) * p(task | given), on every row (no logit exists for the
    product, so the probabilities are clipped as Keras' binary cross-entropy does)."""
    labels = keras.ops.cast(labels, probabilities.dtype)
    per_row = keras.losses.binary_crossentropy(
        keras.ops.expand_dims(labels, -1), keras.ops.expand_dims(probabilities, -1))
    return _weighted_mean(per_row, None)


def regression_loss(labels: Any, predictions: Any, weights: Any | None = None) -> Any:
    """Mean squared error of a regression head; with `weights`, the weighted mean."""
    squared = keras.ops.square(keras.ops.cast(labels, predictions.dtype) - predictions)
    return _weighted_mean(squared, weights)


# === Soft losses: a student learning from a teacher's outputs (models.distillation) ===
# A soft loss compares the student's output with the teacher's. Those of binary and retrieval tasks soften both
# distributions by the distillation temperature and are scaled by its square, so their gradients keep the size
# of the hard loss's (Hinton et al., 2015). A regression task's is regression_loss with the teacher's prediction
# as the label, an entire-space task's entire_space_loss with the teacher's probability as the label.


def soft_binary_loss(teacher_probabilities: Any, student_logits: Any, temperature: float) -> Any:
    """Cross-entropy between the teacher's and the student's tempered probabilities, times temperature**2: the
    teacher's probability p becomes sigmoid(logit(p) / T), the student's sigmoid(logit / T)."""
    probabilities = keras.ops.clip(keras.ops.cast(teacher_probabilities, student_logits.dtype), 1e-7, 1 - 1e-7)
    teacher_logits = keras.ops.log(probabilities) - keras.ops.log1p(-probabilities)
    per_row = keras.losses.binary_crossentropy(
        keras.ops.expand_dims(keras.ops.sigmoid(teacher_logits / temperature), -1),
        keras.ops.expand_dims(student_logits / temperature, -1), from_logits=True)
    return _weighted_mean(per_row, None) * temperature ** 2


def soft_retrieval_loss(student_users: Any, student_items: Any, teacher_users: Any, teacher_items: Any,
                        temperature: float, distillation_temperature: float) -> Any:
    """KL(teacher || student) between each user's in-batch softmaxes over the batch's items, times
    distillation_temperature**2: both models' cosine scores divided by the retrieval `temperature` times the
    distillation temperature. Every row counts, so the student learns how the teacher ranks the other items of the
    batch, not only where it puts the positive. Under a distribution strategy the items are the global batch's,
    as in retrieval_loss."""
    scale = temperature * distillation_temperature

    def log_softmax(users: Any, items: Any) -> Any:
        all_items, _ = _all_replicas(keras.ops.normalize(items, axis=-1))
        logits = keras.ops.matmul(keras.ops.normalize(users, axis=-1), keras.ops.transpose(all_items)) / scale
        return keras.ops.log_softmax(logits, axis=-1)

    student = log_softmax(student_users, student_items)
    teacher = log_softmax(keras.ops.cast(teacher_users, student.dtype), keras.ops.cast(teacher_items, student.dtype))
    per_row = keras.ops.sum(keras.ops.exp(teacher) * (teacher - student), axis=-1)
    return _weighted_mean(per_row, None) * distillation_temperature ** 2


def _weighted_mean(per_row: Any, weights: Any | None) -> Any:
    if weights is None:
        return _global_mean(keras.ops.sum(per_row), _rows(per_row))
    weights = keras.ops.cast(weights, per_row.dtype)
    return _global_mean(keras.ops.sum(per_row * weights), keras.ops.sum(weights))


# === Losses over the global batch ===
# Under a tf.distribute strategy every replica computes the loss of its share of the batch, and Keras averages
# the replicas' losses. Each loss here is therefore this replica's sum over the global count, times the number
# of replicas: the replicas' average is then exactly the loss of the whole batch, also when the shares differ
# in size (the last batch of an epoch).


def _replicas() -> tf.distribute.ReplicaContext | None:
    """The replica context while a step runs on more than one replica; None otherwise."""
    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def _rows(values: Any) -> Any:
    return keras.ops.cast(keras.ops.shape(values)[0], values.dtype)


def _global_mean(total: Any, count: Any) -> Any:
    """`total / count` over the global batch, from this replica's `total` and `count` (see above)."""
    context = _replicas()
    if context is None:
        return total / keras.ops.maximum(count, 1.0)
    global_count = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(count))
    return total * context.num_replicas_in_sync / keras.ops.maximum(global_count, 1.0)


def _all_replicas(rows: Any) -> tuple[Any, Any]:
    """Every replica's `rows`, concatenated in replica order, and the index of this replica's first row there.

    The gather passes gradients back to the replica each row came from."""
    context = _replicas()
    if context is None:
        return rows, 0
    sizes = context.all_gather(tf.shape(rows)[:1], axis=0)
    return context.all_gather(rows, axis=0), keras.ops.sum(sizes[:context.replica_id_in_sync_group])
