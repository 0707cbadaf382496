"""Tasks: each turns predictions and labels into one loss. The model sums them with weights from the config."""

from __future__ import annotations

from typing import Any

import keras


def retrieval_loss(user_embeddings: Any, item_embeddings: Any, item_ids: Any, weights: Any,
                   temperature: float) -> Any:
    """In-batch softmax: each user's own item against every other item of the batch.

    Rows are weighted by `weights` (the click label: only positive interactions are retrieval targets).
    Other rows of the batch that hold the same item are masked out (accidental hits), so an item is never
    its own negative. Embeddings are L2-normalised, so `temperature` sets the sharpness of the softmax.
    """
    users = keras.ops.normalize(user_embeddings, axis=-1)
    items = keras.ops.normalize(item_embeddings, axis=-1)
    logits = keras.ops.matmul(users, keras.ops.transpose(items)) / temperature
    batch = keras.ops.shape(logits)[0]
    diagonal = keras.ops.eye(batch, dtype="bool")
    same_item = keras.ops.equal(keras.ops.expand_dims(item_ids, 1), keras.ops.expand_dims(item_ids, 0))
    logits = keras.ops.where(keras.ops.logical_and(same_item, keras.ops.logical_not(diagonal)), -1e9, logits)
    per_row = keras.losses.categorical_crossentropy(
        keras.ops.cast(diagonal, logits.dtype), logits, from_logits=True)
    weights = keras.ops.cast(weights, per_row.dtype)
    return keras.ops.sum(per_row * weights) / keras.ops.maximum(keras.ops.sum(weights), 1.0)


def click_loss(labels: Any, logits: Any) -> Any:
    """Binary cross-entropy of the click head."""
    labels = keras.ops.cast(labels, logits.dtype)
    return keras.ops.mean(keras.losses.binary_crossentropy(
        keras.ops.expand_dims(labels, -1), keras.ops.expand_dims(logits, -1), from_logits=True))


def rating_loss(labels: Any, predictions: Any) -> Any:
    """Mean squared error of the rating head."""
    return keras.ops.mean(keras.ops.square(keras.ops.cast(labels, predictions.dtype) - predictions))
