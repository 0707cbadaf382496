"""IdDropout: in training, a share of ids is replaced by the unknown-id (OOV) index.

An item that had no training events is looked up through the OOV row of the item id table. Without id dropout that
row never sees a gradient, so a new item's embedding starts from untrained noise that outweighs its text and
categories. Routing a share of the training examples through the OOV row trains it as "an item known only by its
content", and makes the tower carry the signal through the text and category path as well.
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="mtrec")
class IdDropout(keras.layers.Layer):
    """Replaces each non-padding id by `oov_index` with probability `rate`, only when `training` is true.

    Padding (index 0) is never replaced, so masked means over padded lists stay as they are. At serving and
    evaluation (`training` false) the ids pass through unchanged.

    Args:
        rate: float. Share of ids replaced, in [0, 1).
        oov_index: int. The index of the unknown-id row.
        seed: int or None. Seed of the layer's random stream (None: from Keras' global seed).

    Call arguments:
        inputs: integer tensor of ids, any shape.
        training: bool. Whether the layer drops ids.

    Examples:
    >>> layer = IdDropout(0.5, oov_index=9, seed=0)
    >>> layer(keras.ops.array([1, 2, 3]), training=False)  # unchanged outside training
    """

    def __init__(self, rate: float, oov_index: int, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"`rate` should be in [0, 1). Received: `rate` = {rate}.")
        if oov_index <= 0:
            raise ValueError(f"`oov_index` should be a positive integer. Received: `oov_index` = {oov_index}.")
        # === Config ===
        self.rate = rate
        self.oov_index = oov_index
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="id_dropout_seed")

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not training or self.rate == 0.0:
            return inputs
        dropped = keras.ops.logical_and(
            keras.random.uniform(keras.ops.shape(inputs), seed=self.seed_generator) < self.rate, inputs > 0)
        return keras.ops.where(dropped, keras.ops.cast(self.oov_index, inputs.dtype), inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "oov_index": self.oov_index, "seed": self.seed}
