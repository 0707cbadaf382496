"""The serving SavedModel: every signature runs the Transform graph on raw inputs, then the model.

A `tf.Module` holds the Keras 3 model, Transform's layer and the catalogue (every item's text, and an index of
every item's embedding built at export time), so TF Serving and TFMA run the very preprocessing training saw,
and items with text but no interactions are retrievable. Unknown users and items fall into the OOV buckets
(unknown items also have no text); they never fail a request. Loading the SavedModel in Python needs
`import tensorflow_text` first (its WordPiece ops).

Signatures:
    serving_default: serialized raw tf.Examples -> each ranking task's prediction (by task name, e.g. click and
        rating), user_embedding, item_embedding.
    rank: user_id (B,), history (B, H), item_ids (B, C) -> each ranking task's prediction, (B, C).
    retrieve: user_id (B,), history (B, H), k (B,), exclude_history (B,) -> item_ids and scores, (B, max k).
    user_embedding: user_id (B,), history (B, H) -> user_embedding (B, D).
    item_embedding: item_ids (N,) -> item_embedding (N, D).
History rows are padded with empty strings. Every input has the batch dimension first, so TF Serving's
batching can merge requests (with `pad_variable_length_inputs`); a merged batch returns the largest k asked
for, so clients keep their first k columns. Embeddings from `user_embedding`, `item_embedding` and the
retrieval index are L2-normalised, so a dot product is the retrieval score.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from components.example_gen.input_contract import Item
from models import features

_INDEX_BATCH = 512

_USER_ID_SPEC = tf.TensorSpec([None], tf.string, name=features.USER_ID)
_HISTORY_SPEC = tf.TensorSpec([None, None], tf.string, name=features.HISTORY)


def raw_serving_spec(tft_output: tft.TFTransformOutput) -> dict[str, Any]:
    """The raw feature spec a request must follow: the schema's features minus labels and evaluation slices."""
    return {name: spec for name, spec in tft_output.raw_feature_spec().items() if name in features.SERVING_FEATURES}


def _to_sparse(strings: tf.Tensor) -> tf.SparseTensor:
    """(B, H) strings padded with "" -> a SparseTensor without the padding, as parse_example would give."""
    ragged = tf.ragged.boolean_mask(strings, tf.strings.length(strings) > 0)
    return ragged.to_sparse()


def raw_item_features(item_ids: tf.Tensor, titles: tf.Tensor, descriptions: tf.Tensor, categories: tf.Tensor
                      ) -> dict[str, Any]:
    """Raw item features, as ExampleGen writes them, from (N,) strings; `categories` joined by the separator."""
    split = tf.strings.split(categories, features.CATEGORY_SEPARATOR)
    return {
        features.ITEM_ID: item_ids[:, None],
        features.TITLE: titles[:, None],
        features.DESCRIPTION: descriptions[:, None],
        features.CATEGORIES: tf.ragged.boolean_mask(split, tf.strings.length(split) > 0).to_sparse(),
    }


def _served(outputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Every model output but those only training reads (logits, transformed-scale predictions): embeddings and
    each task's prediction."""
    return {name: value for name, value in outputs.items()
            if not name.endswith(features.TRAINING_OUTPUT_SUFFIXES)}


def _normalise(vectors: tf.Tensor) -> tf.Tensor:
    return tf.math.l2_normalize(vectors, axis=-1)


class ServingModule(tf.Module):
    """The exported object: the model, Transform's layer, the catalogue and its embedding index."""

    def __init__(self, model: Any, tft_output: tft.TFTransformOutput, catalogue: list[Item]):
        super().__init__()
        self.model = model
        self.tft_layer = tft_output.transform_features_layer()
        self._raw_spec = raw_serving_spec(tft_output)
        ids = [item.item_id for item in catalogue]
        self.catalogue_ids = tf.constant(ids, tf.string)
        self.titles = tf.constant([item.title for item in catalogue], tf.string)
        self.descriptions = tf.constant([item.description for item in catalogue], tf.string)
        self.categories = tf.constant(
            [features.CATEGORY_SEPARATOR.join(item.categories) for item in catalogue], tf.string)
        self.row_of_item = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self.catalogue_ids, tf.range(len(ids), dtype=tf.int64)), -1)
        vectors = [self._item_vectors(self.catalogue_ids[start:start + _INDEX_BATCH])
                   for start in range(0, len(ids), _INDEX_BATCH)]
        self.catalogue_embeddings = tf.Variable(_normalise(tf.concat(vectors, 0)), trainable=False)

    # === Raw features -> tower inputs ===

    def _item_vectors(self, item_ids: tf.Tensor) -> tf.Tensor:
        """Item tower output for ids; text and categories come from the catalogue (none for unknown ids)."""
        rows = self.row_of_item.lookup(item_ids)
        known = rows >= 0
        safe = tf.maximum(rows, 0)

        def column(values: tf.Tensor) -> tf.Tensor:
            return tf.where(known, tf.gather(values, safe), "")

        raw = raw_item_features(item_ids, column(self.titles), column(self.descriptions), column(self.categories))
        return self.model.item_tower(self.tft_layer(raw))

    def _user_vectors(self, user_id: tf.Tensor, history: tf.Tensor) -> tf.Tensor:
        raw = {features.USER_ID: user_id[:, None], features.HISTORY: _to_sparse(history)}
        return self.model.user_tower(self.tft_layer(raw))

    # === Signatures ===

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.EXAMPLES_INPUT)])
    def serve_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        transformed = self.tft_layer(tf.io.parse_example(examples, self._raw_spec))
        return _served(self.model(transformed, training=False))

    @tf.function(input_signature=[_USER_ID_SPEC, _HISTORY_SPEC,
                                  tf.TensorSpec([None, None], tf.string, name=features.ITEM_IDS)])
    def rank(self, user_id: tf.Tensor, history: tf.Tensor, item_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        users = self._user_vectors(user_id, history)
        candidates = tf.shape(item_ids)[1]
        items = self._item_vectors(tf.reshape(item_ids, [-1]))
        scores = _served(self.model.score(tf.repeat(users, candidates, axis=0), items))
        return {name: tf.reshape(score, [tf.shape(item_ids)[0], candidates]) for name, score in scores.items()}

    @tf.function(input_signature=[_USER_ID_SPEC, _HISTORY_SPEC, tf.TensorSpec([None], tf.int32, name=features.K),
                                  tf.TensorSpec([None], tf.bool, name=features.EXCLUDE_HISTORY)])
    def retrieve(self, user_id: tf.Tensor, history: tf.Tensor, k: tf.Tensor, exclude_history: tf.Tensor
                 ) -> dict[str, tf.Tensor]:
        users = _normalise(self._user_vectors(user_id, history))
        scores = tf.matmul(users, self.catalogue_embeddings, transpose_b=True)  # (B, N)
        rows = self.row_of_item.lookup(history)  # (B, H), -1 for padding and unknown ids
        known = tf.where(rows >= 0)
        seen = tf.scatter_nd(tf.stack([known[:, 0], tf.gather_nd(rows, known)], axis=1),
                             tf.ones([tf.shape(known)[0]]), tf.shape(scores, out_type=tf.int64)) > 0
        scores = tf.where(tf.logical_and(exclude_history[:, None], seen), tf.constant(-3.0), scores)  # < any cosine
        top = tf.math.top_k(scores, k=tf.minimum(tf.reduce_max(k), tf.shape(self.catalogue_ids)[0]))
        return {features.ITEM_IDS: tf.gather(self.catalogue_ids, top.indices), features.SCORES: top.values}

    @tf.function(input_signature=[_USER_ID_SPEC, _HISTORY_SPEC])
    def user_embedding(self, user_id: tf.Tensor, history: tf.Tensor) -> dict[str, tf.Tensor]:
        return {features.USER_EMBEDDING: _normalise(self._user_vectors(user_id, history))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.ITEM_IDS)])
    def item_embedding(self, item_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {features.ITEM_EMBEDDING: _normalise(self._item_vectors(item_ids))}

    def signatures(self) -> dict[str, Any]:
        return {
            features.SERVING_SIGNATURE: self.serve_examples,
            features.RANK_SIGNATURE: self.rank,
            features.RETRIEVE_SIGNATURE: self.retrieve,
            features.USER_EMBEDDING_SIGNATURE: self.user_embedding,
            features.ITEM_EMBEDDING_SIGNATURE: self.item_embedding,
        }


def save_serving_model(model: Any, tft_output: tft.TFTransformOutput, catalogue: list[Item],
                       export_dir: str) -> None:
    module = ServingModule(model, tft_output, catalogue)
    tf.saved_model.save(module, export_dir, signatures=module.signatures())
