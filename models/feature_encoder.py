"""FeatureEncoder: the declared features of one source (user, item or context) as one vector."""

from __future__ import annotations

from typing import Any

import keras

from models import features
from models.embedding import SparseEmbedding, masked_mean


class FeatureEncoder(keras.layers.Layer):
    """Concatenates an embedding per categorical feature (the mean over a multi-categorical feature's values;
    index 0, missing, embeds to its own row, or to nothing for padding), and the (value, present) pair of each
    z-scored numeric feature, so a missing value is seen as missing rather than as the mean.

    Args:
        declared: list of features.Feature. The features to encode (one source's).
        sizes: dict. Feature name -> size of its index space (index 0 included), for the embedded ones.
        embedding_dim: int. Size of each feature's embedding.
    """

    def __init__(self, declared: list[features.Feature], sizes: dict[str, int], embedding_dim: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.declared = list(declared)
        # === Layers ===
        self.embeddings = {feature.name: SparseEmbedding(sizes[feature.name], embedding_dim,
                                                         name=f"{feature.name}_embedding")
                           for feature in self.declared if not feature.is_dense}
        # === Config ===
        self.embedding_dim = embedding_dim

    def call(self, inputs: dict[str, Any]) -> Any:
        parts = []
        for feature in self.declared:
            value = inputs[feature.input_name]
            if feature.is_dense:
                parts.append(keras.ops.cast(value, self.compute_dtype))
            elif feature.type == features.MULTI_CATEGORICAL:
                parts.append(masked_mean(self.embeddings[feature.name](value), value))
            else:
                parts.append(self.embeddings[feature.name](value))
        return keras.ops.concatenate(parts, axis=-1)
