"""Layers over a user's history sequence: each position is a history item read through the item tower
(models.catalogue), most recent first, with a mask that is false for padding.

HistoryTransformer pools the sequence into one vector that knows order and recency (the sequence user tower);
TargetAttention weights it by relevance to one candidate (DIN, Zhou et al. 2018) for the ranking heads.
"""

from __future__ import annotations

from typing import Any

import keras
import keras_hub

from models.ranking import MLP


def masked_average(sequence: Any, weights: Any) -> Any:
    """Sum over positions of (batch, length, dim) `sequence` weighted by (batch, length) `weights`, divided by the
    weights' sum (0 where every weight is 0)."""
    weights = keras.ops.cast(weights, sequence.dtype)
    total = keras.ops.sum(sequence * keras.ops.expand_dims(weights, -1), axis=1)
    return total / keras.ops.maximum(keras.ops.expand_dims(keras.ops.sum(weights, axis=1), -1), 1e-9)


@keras.saving.register_keras_serializable(package="mtrec")
class HistoryTransformer(keras.layers.Layer):
    """A position embedding, then KerasHub TransformerEncoder layers with the padding mask, then the masked mean
    of their outputs. Padding never changes the output; the order of the history does.

    Args:
        length: int. History length (positions embedded).
        num_layers: int. Transformer layers.
        num_heads: int. Attention heads per layer.
        intermediate_dim: int. Width of each layer's feed-forward part.
        dropout: float. Dropout inside the layers, in training.

    Call arguments:
        sequence: float (batch, length, dim).
        mask: bool (batch, length), false at padding.
    """

    def __init__(self, length: int, num_layers: int = 1, num_heads: int = 2, intermediate_dim: int = 64,
                 dropout: float = 0.1, **kwargs: Any):
        super().__init__(**kwargs)
        # === Layers ===
        self.position_embedding = keras_hub.layers.PositionEmbedding(length, name="history_position_embedding")
        self.encoder_layers = [keras_hub.layers.TransformerEncoder(intermediate_dim, num_heads, dropout=dropout,
                                                                   name=f"history_transformer_{i}")
                               for i in range(num_layers)]
        # === Config ===
        self.length = length
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout

    def call(self, sequence: Any, mask: Any, training: bool = False) -> Any:
        x = sequence + self.position_embedding(sequence)
        for layer in self.encoder_layers:
            x = layer(x, padding_mask=mask, training=training)
        return masked_average(x, mask)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "length": self.length, "num_layers": self.num_layers,
                "num_heads": self.num_heads, "intermediate_dim": self.intermediate_dim, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="mtrec")
class TargetAttention(keras.layers.Layer):
    """DIN's activation unit: an MLP scores each history position against the candidate from
    [candidate, position, candidate - position, candidate * position]; the softmax of the scores over the
    non-padding positions weights the history. A history of padding only gives zeros.

    Args:
        units: list of int. Hidden widths of the scoring MLP.

    Call arguments:
        candidate: float (batch, dim).
        sequence: float (batch, length, dim).
        mask: bool (batch, length), false at padding.
    """

    def __init__(self, units: list[int] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = list(units or [32])
        # === Layers ===
        self.scorer = MLP(self.units, name="attention_mlp")
        self.score_output = keras.layers.Dense(1, name="attention_score")

    def call(self, candidate: Any, sequence: Any, mask: Any) -> Any:
        query = keras.ops.broadcast_to(keras.ops.expand_dims(candidate, 1), keras.ops.shape(sequence))
        pairs = keras.ops.concatenate([query, sequence, query - sequence, query * sequence], axis=-1)
        scores = keras.ops.squeeze(self.score_output(self.scorer(pairs)), -1)  # (batch, length)
        mask = keras.ops.cast(mask, "bool")
        scores = keras.ops.where(mask, scores, keras.ops.full_like(scores, -1e9))
        weights = keras.ops.softmax(scores - keras.ops.max(scores, axis=1, keepdims=True), axis=1)
        return masked_average(sequence, weights * keras.ops.cast(mask, weights.dtype))

    def compute_output_shape(self, candidate_shape: tuple, sequence_shape: tuple, mask_shape: tuple) -> tuple:
        return candidate_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}
