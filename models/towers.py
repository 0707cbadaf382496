"""The two towers: a user embedding from id, history and the declared user features; an item embedding from id,
categories, text and the declared item features."""

from __future__ import annotations

from typing import Any

import keras

from models import features
from models.embedding import SparseEmbedding, masked_mean
from models.id_dropout import IdDropout


class UserTower(keras.layers.Layer):
    """User id embedding, the user's recent items and the declared user features, projected to `output_dim`.

    The recent items are either the mean of their id embeddings, or, given a `sequence_encoder`, the history
    sequence (each position read through the item tower, so a new item counts through its content) encoded with
    its order (models.sequence.HistoryTransformer).

    Args:
        num_users: int. Size of the user index space (vocabulary plus OOV buckets).
        item_embedding: keras.layers.Embedding. The item id table, shared with the item tower, so history and
            candidates live in one space.
        output_dim: int. Size of the user embedding.
        user_features: FeatureEncoder or None. The declared user features (None: none declared); they also
            carry a user whose id is unknown.
        sequence_encoder: keras.layers.Layer or None. Pools the history sequence; None: the mean id embedding.

    Call arguments:
        inputs: dict of transformed features.
        history: (sequence (batch, length, dim), mask (batch, length)) or None. Required with a sequence encoder
            (see MultiTaskRecommender.history_sequence).
    """

    def __init__(self, num_users: int, item_embedding: keras.layers.Embedding, output_dim: int,
                 user_features: keras.layers.Layer | None = None,
                 sequence_encoder: keras.layers.Layer | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        # === Layers ===
        self.user_embedding = SparseEmbedding(num_users, output_dim, name="user_id_embedding")
        self.item_embedding = item_embedding
        self.user_features = user_features
        self.sequence_encoder = sequence_encoder
        self.projection = keras.layers.Dense(output_dim, dtype="float32", name="user_projection")  # see ItemTower
        # === Config ===
        self.num_users = num_users
        self.output_dim = output_dim

    @property
    def reads_history_sequence(self) -> bool:
        return self.sequence_encoder is not None

    def call(self, inputs: dict[str, Any], history: tuple[Any, Any] | None = None, training: bool = False) -> Any:
        if self.sequence_encoder is None:
            indices = inputs[features.HISTORY_INDICES]
            behaviour = masked_mean(self.item_embedding(indices), indices)
        elif history is None:
            raise ValueError("A sequence user tower needs the history sequence "
                             "(see MultiTaskRecommender.history_sequence).")
        else:
            behaviour = self.sequence_encoder(*history, training=training)
        parts = [self.user_embedding(inputs[features.USER_INDEX]), behaviour]
        if self.user_features is not None:
            parts.append(self.user_features(inputs))
        return self.projection(keras.ops.concatenate(parts, axis=-1))


class ItemTower(keras.layers.Layer):
    """Item id embedding, mean category embedding, the text encoder's vector and the declared item features,
    projected to `output_dim`.

    An item without interactions falls into the OOV id bucket, so its text, categories and attributes carry it:
    this is what makes cold items recommendable. `id_dropout` trains for that case: in training, that share of
    candidates is looked up through the OOV row (the item index space's last row: padding 0, the vocabulary, then
    the OOV bucket, see models.preprocessing), so the row is trained and the content path learns to carry the item.

    Args:
        item_embedding: keras.layers.Embedding. The item id table (index 0 is padding).
        num_categories: int. Size of the category index space (padding, vocabulary, OOV); 0 leaves categories out.
        text_encoder: keras.layers.Layer or None. Maps tokenized text to a vector (models.text_encoder); None
            builds an id-and-categories tower without text.
        output_dim: int. Size of the item embedding.
        item_features: FeatureEncoder or None. The declared item features (None: none declared).
        id_dropout: float. Share of training examples that see their item through the OOV id row (0: none).
    """

    def __init__(self, item_embedding: keras.layers.Embedding, num_categories: int,
                 text_encoder: keras.layers.Layer | None, output_dim: int,
                 item_features: keras.layers.Layer | None = None, id_dropout: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        # === Layers ===
        self.item_embedding = item_embedding
        self.item_id_dropout = IdDropout(id_dropout, oov_index=item_embedding.input_dim - 1, name="item_id_dropout")
        self.item_features = item_features
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
        self.id_dropout = id_dropout

    @property
    def input_names(self) -> list[str]:
        """The transformed features the tower reads."""
        names = [features.ITEM_INDEX]
        if self.category_embedding is not None:
            names.append(features.CATEGORY_INDICES)
        if self.text_encoder is not None:
            names += [features.TEXT_TOKEN_IDS, features.TEXT_PADDING_MASK]
        if self.item_features is not None:
            names += [feature.input_name for feature in self.item_features.declared]
        return names

    def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
        parts = [self.item_embedding(self.item_id_dropout(inputs[features.ITEM_INDEX], training=training))]
        if self.category_embedding is not None:
            categories = inputs[features.CATEGORY_INDICES]
            parts.append(masked_mean(self.category_embedding(categories), categories))
        if self.text_encoder is not None:
            text = self.text_encoder({key: inputs[key] for key in (features.TEXT_TOKEN_IDS,
                                                                   features.TEXT_PADDING_MASK)})
            parts.append(self.text_projection(text))
        if self.item_features is not None:
            parts.append(self.item_features(inputs))
        return self.projection(keras.ops.concatenate(parts, axis=-1))
