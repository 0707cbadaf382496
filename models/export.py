"""The serving SavedModel: every signature runs the Transform graph on raw inputs, then the model.

A `tf.Module` holds the Keras 3 model, Transform's layer, the catalogue (every item's text and declared item
features, and an index of every item's embedding built at export time) and the user table (users.csv's declared
user features), so TF Serving and TFMA run the very preprocessing training saw, items with text but no
interactions are retrievable, and a request names a user by id alone. Unknown users and items fall into the OOV
buckets with missing features (unknown items also have no text); they never fail a request. Loading the
SavedModel in Python needs `import tensorflow_text` first (its WordPiece ops).

Signatures:
    serving_default: serialized raw tf.Examples -> each ranking task's prediction (by task name, e.g. click and
        rating), user_embedding, item_embedding. A declared user or item feature an example carries overrides the
        table's value; one it lacks is taken from the user table or the catalogue.
    rank: user_id (B,), history (B, H), item_ids (B, C), and each declared context feature -> each ranking task's
        prediction, (B, C). Context inputs: a categorical one (B,) strings ("" missing), a multi-categorical one
        (B, M) strings padded with "", a numeric one (B,) floats (NaN missing); `timestamp` (B,) Unix seconds when
        a timestamp part is declared.
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

from components.example_gen.input_contract import Item, User, Values
from models import features

_INDEX_BATCH = 512

_USER_ID_SPEC = tf.TensorSpec([None], tf.string, name=features.USER_ID)
_HISTORY_SPEC = tf.TensorSpec([None, None], tf.string, name=features.HISTORY)


def raw_serving_spec(tft_output: tft.TFTransformOutput, declared: list[features.Feature]) -> dict[str, Any]:
    """The raw feature spec a request must follow: the schema's features minus labels and evaluation slices."""
    wanted = {*features.SERVING_FEATURES, *features.raw_columns(declared)}
    return {name: spec for name, spec in tft_output.raw_feature_spec().items() if name in wanted}


def _without_empty(strings: tf.Tensor) -> tf.SparseTensor:
    """(B, H) strings padded with "" -> a SparseTensor without the padding, as parse_example would give."""
    return tf.ragged.boolean_mask(strings, tf.strings.length(strings) > 0).to_sparse()


def _without_nan(numbers: tf.Tensor) -> tf.SparseTensor:
    """(B, 1) floats, NaN for missing -> a SparseTensor without the missing ones."""
    return tf.ragged.boolean_mask(numbers, tf.math.is_finite(numbers)).to_sparse()


def _ragged_column(feature: features.Feature, rows: list[Values]) -> tf.RaggedTensor:
    dtype = tf.float32 if feature.type == features.NUMERIC else tf.string
    return tf.ragged.constant([list(values) for values in rows], dtype=dtype, ragged_rank=1)


class KeyedTable(tf.Module):
    """Rows keyed by an id (the catalogue, users.csv), with string columns and declared features' raw values, looked
    up in the graph. An id the table lacks reads as an empty row: empty strings and missing features."""

    def __init__(self, keys: list[str], strings: dict[str, list[str]], declared: list[features.Feature],
                 values: list[dict[str, Values]]):
        super().__init__()
        self.keys = tf.constant(keys, tf.string)
        self.size = len(keys)
        # TF's hash tables cannot be empty; a table without rows (no user features declared) has no lookup.
        self.row_of = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self.keys, tf.range(self.size, dtype=tf.int64)), -1) if keys else None
        # Each column has one more row, empty, which unknown ids read.
        self.strings = {name: tf.constant([*column, ""], tf.string) for name, column in strings.items()}
        self.features = {feature.name: _ragged_column(feature, [row[feature.name] for row in values] + [()])
                         for feature in declared}

    def rows(self, ids: tf.Tensor, wanted: tf.Tensor | None = None) -> tf.Tensor:
        """The rows of `ids`; the empty row for an unknown id, or where `wanted` is False."""
        if self.row_of is None:
            return tf.fill(tf.shape(ids, out_type=tf.int64), tf.constant(self.size, tf.int64))
        rows = self.row_of.lookup(ids)
        use = rows >= 0 if wanted is None else tf.logical_and(rows >= 0, wanted)
        return tf.where(use, rows, self.size)

    def string(self, name: str, rows: tf.Tensor) -> tf.Tensor:
        return tf.gather(self.strings[name], rows)

    def raw_features(self, rows: tf.Tensor) -> dict[str, tf.SparseTensor]:
        """The declared features of `rows`, as parse_example gives them."""
        return {name: tf.gather(column, rows).to_sparse() for name, column in self.features.items()}


def catalogue_table(catalogue: list[Item], declared: list[features.Feature]) -> KeyedTable:
    """The catalogue's items by id: their text (categories joined by the separator) and declared item features."""
    return KeyedTable(
        [item.item_id for item in catalogue],
        {features.TITLE: [item.title for item in catalogue],
         features.DESCRIPTION: [item.description for item in catalogue],
         features.CATEGORIES: [features.CATEGORY_SEPARATOR.join(item.categories) for item in catalogue]},
        features.of_source(declared, features.ITEMS_SOURCE), [item.attributes for item in catalogue])


def user_table(users: list[User], declared: list[features.Feature]) -> KeyedTable:
    """users.csv's users by id, with their declared user features."""
    return KeyedTable([user.user_id for user in users], {}, features.of_source(declared, features.USERS_SOURCE),
                      [user.attributes for user in users])


def raw_item_features(item_ids: tf.Tensor, items: KeyedTable) -> dict[str, Any]:
    """Raw item features, as ExampleGen writes them, of (N,) item ids: text, categories and declared features from
    the catalogue (none for an unknown id)."""
    rows = items.rows(item_ids)
    split = tf.strings.split(items.string(features.CATEGORIES, rows), features.CATEGORY_SEPARATOR)
    return {
        features.ITEM_ID: item_ids[:, None],
        features.TITLE: items.string(features.TITLE, rows)[:, None],
        features.DESCRIPTION: items.string(features.DESCRIPTION, rows)[:, None],
        features.CATEGORIES: tf.ragged.boolean_mask(split, tf.strings.length(split) > 0).to_sparse(),
        **items.raw_features(rows),
    }


def _union(given: tf.SparseTensor, table: tf.SparseTensor) -> tf.SparseTensor:
    """Each row's values of `given`, followed by those of `table` (empty wherever `given` has values)."""
    joined = tf.concat([tf.RaggedTensor.from_sparse(given), tf.RaggedTensor.from_sparse(table)], axis=1)
    return joined.to_sparse()


def _served(outputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Every model output but those only training reads (logits, transformed-scale predictions): embeddings and
    each task's prediction."""
    return {name: value for name, value in outputs.items()
            if not name.endswith(features.TRAINING_OUTPUT_SUFFIXES)}


def _normalise(vectors: tf.Tensor) -> tf.Tensor:
    return tf.math.l2_normalize(vectors, axis=-1)


def context_specs(declared: list[features.Feature]) -> dict[str, tf.TensorSpec]:
    """The inputs `rank` takes for the declared context features (see the module docstring)."""
    specs = {}
    for feature in features.request_features(declared):
        if feature.type == features.NUMERIC:
            specs[feature.name] = tf.TensorSpec([None], tf.float32, name=feature.name)
        elif feature.type == features.MULTI_CATEGORICAL:
            specs[feature.name] = tf.TensorSpec([None, None], tf.string, name=feature.name)
        else:
            specs[feature.name] = tf.TensorSpec([None], tf.string, name=feature.name)
    if any(feature.type == features.TIMESTAMP_PART for feature in declared):
        specs[features.TIMESTAMP] = tf.TensorSpec([None], tf.int64, name=features.TIMESTAMP)
    return specs


def raw_context(inputs: dict[str, tf.Tensor], declared: list[features.Feature]) -> dict[str, Any]:
    """A `rank` request's context inputs as raw features, as parse_example gives them."""
    raw: dict[str, Any] = {}
    for feature in features.request_features(declared):
        value = inputs[feature.name]
        if feature.type == features.NUMERIC:
            raw[feature.name] = _without_nan(value[:, None])
        else:
            raw[feature.name] = _without_empty(value if feature.type == features.MULTI_CATEGORICAL else value[:, None])
    if features.TIMESTAMP in inputs:
        raw[features.TIMESTAMP] = inputs[features.TIMESTAMP][:, None]
    return raw


class ServingModule(tf.Module):
    """The exported object: the model, Transform's layer, the catalogue and its embedding index, the user table."""

    def __init__(self, model: Any, tft_output: tft.TFTransformOutput, catalogue: list[Item],
                 users: list[User] = (), declared: list[features.Feature] = ()):
        super().__init__()
        self.model = model
        self.tft_layer = tft_output.transform_features_layer()
        self.declared = list(declared)
        self._raw_spec = raw_serving_spec(tft_output, self.declared)
        self.items = catalogue_table(catalogue, self.declared)
        self.users = user_table(list(users), self.declared)
        vectors = [self._item_vectors(self.items.keys[start:start + _INDEX_BATCH])
                   for start in range(0, self.items.size, _INDEX_BATCH)]
        self.catalogue_embeddings = tf.Variable(_normalise(tf.concat(vectors, 0)), trainable=False)
        context = context_specs(self.declared)
        self.rank = tf.function(self._rank, input_signature=[{
            features.USER_ID: _USER_ID_SPEC, features.HISTORY: _HISTORY_SPEC,
            features.ITEM_IDS: tf.TensorSpec([None, None], tf.string, name=features.ITEM_IDS), **context}])

    # === Raw features -> tower inputs ===

    def _item_vectors(self, item_ids: tf.Tensor) -> tf.Tensor:
        """Item tower output for ids; text, categories and item features come from the catalogue."""
        return self.model.item_tower(self.tft_layer(raw_item_features(item_ids, self.items)))

    def _user_inputs(self, user_id: tf.Tensor, history: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = {features.USER_ID: user_id[:, None], features.HISTORY: _without_empty(history),
               **self.users.raw_features(self.users.rows(user_id))}
        return self.tft_layer(raw)

    def _user_vectors(self, user_id: tf.Tensor, history: tf.Tensor) -> tf.Tensor:
        transformed = self._user_inputs(user_id, history)
        return self.model.user_tower(transformed, history=self.model.history_sequence(transformed))

    def _with_table_features(self, parsed: dict[str, Any]) -> dict[str, Any]:
        """Parsed examples with each declared user and item feature an example lacks taken from the tables."""
        filled = dict(parsed)
        for table, key in ((self.users, features.USER_ID), (self.items, features.ITEM_ID)):
            ids = tf.reshape(parsed[key], [-1])
            for name, values in table.features.items():
                lacking = tf.RaggedTensor.from_sparse(parsed[name]).row_lengths() == 0
                filled[name] = _union(parsed[name], tf.gather(values, table.rows(ids, lacking)).to_sparse())
        return filled

    # === Signatures ===

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.EXAMPLES_INPUT)])
    def serve_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = self._with_table_features(tf.io.parse_example(examples, self._raw_spec))
        return _served(self.model(self.tft_layer(parsed), training=False))

    def _rank(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        item_ids = inputs[features.ITEM_IDS]
        transformed = self._user_inputs(inputs[features.USER_ID], inputs[features.HISTORY])
        history = self.model.history_sequence(transformed)
        users = self.model.user_tower(transformed, history=history)
        candidates = tf.shape(item_ids)[1]
        items = self._item_vectors(tf.reshape(item_ids, [-1]))
        # The context and the history of each request, once per candidate (the TFRS baseline reads neither).
        context = [tf.repeat(self.model.context(self.tft_layer(raw_context(inputs, self.declared))), candidates, 0)
                   ] if features.of_source(self.declared, features.EVENTS_SOURCE) else []
        sequence = {} if history is None else {"history": tuple(tf.repeat(part, candidates, 0) for part in history)}
        scores = _served(self.model.score(tf.repeat(users, candidates, axis=0), items, *context, **sequence))
        return {name: tf.reshape(score, [tf.shape(item_ids)[0], candidates]) for name, score in scores.items()}

    @tf.function(input_signature=[_USER_ID_SPEC, _HISTORY_SPEC, tf.TensorSpec([None], tf.int32, name=features.K),
                                  tf.TensorSpec([None], tf.bool, name=features.EXCLUDE_HISTORY)])
    def retrieve(self, user_id: tf.Tensor, history: tf.Tensor, k: tf.Tensor, exclude_history: tf.Tensor
                 ) -> dict[str, tf.Tensor]:
        users = _normalise(self._user_vectors(user_id, history))
        scores = tf.matmul(users, self.catalogue_embeddings, transpose_b=True)  # (B, N)
        rows = self.items.rows(history)  # (B, H), the empty row (N) for padding and unknown ids
        known = tf.where(rows < self.items.size)
        seen = tf.scatter_nd(tf.stack([known[:, 0], tf.gather_nd(rows, known)], axis=1),
                             tf.ones([tf.shape(known)[0]]), tf.shape(scores, out_type=tf.int64)) > 0
        scores = tf.where(tf.logical_and(exclude_history[:, None], seen), tf.constant(-3.0), scores)  # < any cosine
        top = tf.math.top_k(scores, k=tf.minimum(tf.reduce_max(k), self.items.size))
        return {features.ITEM_IDS: tf.gather(self.items.keys, top.indices), features.SCORES: top.values}

    @tf.function(input_signature=[_USER_ID_SPEC, _HISTORY_SPEC])
    def user_embedding(self, user_id: tf.Tensor, history: tf.Tensor) -> dict[str, tf.Tensor]:
        return {features.USER_EMBEDDING: _normalise(self._user_vectors(user_id, history))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.ITEM_IDS)])
    def item_embedding(self, item_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {features.ITEM_EMBEDDING: _normalise(self._item_vectors(item_ids))}

    def signatures(self) -> dict[str, Any]:
        return {
            features.SERVING_SIGNATURE: self.serve_examples,
            features.RANK_SIGNATURE: self.rank.get_concrete_function(),
            features.RETRIEVE_SIGNATURE: self.retrieve,
            features.USER_EMBEDDING_SIGNATURE: self.user_embedding,
            features.ITEM_EMBEDDING_SIGNATURE: self.item_embedding,
        }


def save_serving_model(model: Any, tft_output: tft.TFTransformOutput, catalogue: list[Item], export_dir: str,
                       users: list[User] = (), declared: list[features.Feature] = ()) -> None:
    module = ServingModule(model, tft_output, catalogue, users, declared)
    tf.saved_model.save(module, export_dir, signatures=module.signatures())
