"""The two towers: a user embedding from id and history, an item embedding from id, categories and text."""

from __future__ import annotations

from typing import Any

import keras

from models import features
from models.embedding import SparseEmbedding


def _masked_mean(embeddings: Any, indices: Any) -> Any:
    """Mean over the non-padding (index > 0) positions of (batch, length, dim) embeddings."""
    mask = keras.ops.expand_dims(keras.ops.cast(indices > 0, embeddings.dtype), -1)
    return keras.ops.sum(embeddings * mask, axis=1) / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)


class UserTower(keras.layers.Layer):
    """User id embedding plus the mean embedding of the user's recent items, projected to `output_dim`.

    Args:
        num_users: int. Size of the user index space (vocabulary plus OOV buckets).
        item_embedding: keras.layers.Embedding. The item id table, shared with the item tower, so history and
            candidates live in one space.
        output_dim: int. Size of the user embedding.
    """

    def __init__(self, num_users: int, item_embedding: keras.layers.Embedding, output_dim: int, **kwargs: Any):
        super().__init__(**kwargs)
        # === Layers ===
        self.user_embedding = SparseEmbedding(num_users, output_dim, name="user_id_embedding")
        self.item_embedding = item_embedding
        self.projection = keras.layers.Dense(output_dim, dtype="float32", name="user_projection")  # see ItemTower
        # === Config ===
        self.num_users = num_users
        self.output_dim = output_dim

    def call(self, inputs: dict[str, Any]) -> Any:
        history = inputs[features.HISTORY_INDICES]
        return self.projection(keras.ops.concatenate([
            self.user_embedding(inputs[features.USER_INDEX]),
            _masked_mean(self.item_embedding(history), history),
        ], axis=-1))


class ItemTower(keras.layers.Layer):
    """Item id embedding, mean category embedding and the text encoder's vector, projected to `output_dim`.

    An item without interactions falls into the OOV id bucket, so its text and categories carry it: this is
    what makes cold items recommendable.

    Args:
        item_embedding: keras.layers.Embedding. The item id table (index 0 is padding).
        num_categories: int. Size of the category index space (padding, vocabulary, OOV); 0 leaves categories out.
        text_encoder: keras.layers.Layer or None. Maps tokenized text to a vector (models.text_encoder); None
            builds an id-and-categories tower without text.
        output_dim: int. Size of the item embedding.
    """

    def __init__(self, item_embedding: keras.layers.Embedding, num_categories: int,
                 text_encoder: keras.layers.Layer | None, output_dim: int, **kwargs: Any):
        super().__init__(**kwargs)
        # === Layers ===
        self.item_embedding = item_embedding
        self.category_embedding = (SparseEmbedding(num_categories, output_dim, name="category_embedding")
                                   if num_categories else None)
        self.text_encoder = text_encoder
        self.text_projection = (keras.layers.Dense(output_dim, activation="relu", name="text_projection")
                                if text_encoder is not None else None)
        # float32 under mixed precision too: embeddings feed the retrieval logits and the serving index.
        self.projection = keras.layers.Dense(output_dim, dtype="float32", name="item_projection")
        # === Config ===
        self.num_categories = num_categories
        self.output_dim = output_dim

    def call(self, inputs: dict[str, Any]) -> Any:
        categories = inputs[features.CATEGORY_INDICES]
        parts = [self.item_embedding(inputs[features.ITEM_INDEX])]
        if self.category_embedding is not None:
            parts.append(_masked_mean(self.category_embedding(categories), categories))
        if self.text_encoder is not None:
            text = self.text_encoder({key: inputs[key] for key in (features.TEXT_TOKEN_IDS,
                                                                   features.TEXT_PADDING_MASK)})
            parts.append(self.text_projection(text))
        return self.projection(keras.ops.concatenate(parts, axis=-1))
