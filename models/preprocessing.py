"""Transform's preprocessing_fn: id vocabularies with OOV buckets, in-graph WordPiece tokenization, labels.

Everything here becomes the Transform graph that the exported model carries, so training and serving see the
same features. The tokenizer uses only the classic TF Text ops (case folding, NFD normalisation, regex split,
WordPiece) that TF Serving's bundled TF Text registers; the vocabulary is a constant in the graph.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_text as tf_text
import tensorflow_transform as tft

from models import features, text_encoder

OOV_BUCKETS = 1
_ITEM_KEY_SPACE = 2**62 - 1  # item keys are 1 .. 2**62 - 1; two ids of a 100k catalogue share one with p < 1e-8
# Index 0 is reserved for padding in item and category index spaces, so the model can mask it.
PADDING_INDEX = 0
CLS, SEP, PAD, UNK = "[CLS]", "[SEP]", "[PAD]", "[UNK]"


def make_tokenizer(vocabulary: list[str]) -> tf_text.BertTokenizer:
    # Created in the init scope, the table is initialised once when the graph loads, not on every batch.
    with tf.init_scope():
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                keys=tf.constant(vocabulary), values=tf.range(len(vocabulary), dtype=tf.int64)),
            default_value=-1)
    return tf_text.BertTokenizer(table, token_out_type=tf.int64, lower_case=True, unknown_token=UNK)


def tokenize(text: tf.Tensor, vocabulary: list[str], max_length: int) -> tuple[tf.Tensor, tf.Tensor]:
    """[CLS] wordpieces [SEP], truncated and padded to `max_length`; returns (token_ids, padding_mask)."""
    tokens = make_tokenizer(vocabulary).tokenize(text).merge_dims(-2, -1)[:, : max_length - 2]
    batch = tf.shape(text, out_type=tf.int64)[:1]
    cls = tf.fill(tf.concat([batch, [1]], 0), tf.constant(vocabulary.index(CLS), tf.int64))
    sep = tf.fill(tf.concat([batch, [1]], 0), tf.constant(vocabulary.index(SEP), tf.int64))
    sequence = tf.concat([cls, tokens, sep], axis=1)
    token_ids = sequence.to_tensor(default_value=vocabulary.index(PAD), shape=[None, max_length])
    padding_mask = tf.cast(tf.sequence_mask(sequence.row_lengths(), max_length), tf.int64)
    return token_ids, padding_mask


def _dense_indices(sparse: tf.SparseTensor, width: int, default: Any = PADDING_INDEX) -> tf.Tensor:
    """A (batch, width) tensor of a sparse list per example, truncated to `width` and padded with `default`."""
    batch = sparse.dense_shape[0]
    sliced = tf.sparse.slice(sparse, [0, 0], tf.stack([batch, width]))
    sliced = tf.SparseTensor(sliced.indices, sliced.values, tf.stack([batch, tf.constant(width, tf.int64)]))
    return tf.reshape(tf.sparse.to_dense(sliced, default_value=default), [-1, width])


def _squeeze(tensor: tf.Tensor) -> tf.Tensor:
    """Scalar features arrive as (batch,) or (batch, 1) depending on the TFXIO; models want (batch,)."""
    return tf.reshape(tensor, [-1])


def _shifted(sparse: tf.SparseTensor) -> tf.SparseTensor:
    """Indices moved up by one, so that PADDING_INDEX (0) means missing."""
    return tf.SparseTensor(sparse.indices, sparse.values + 1, sparse.dense_shape)


def _first_value(sparse: tf.SparseTensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(value, present) of a numeric feature with at most one value per example: (batch,) each, 0 where missing."""
    value = _dense_indices(sparse, 1, default=0.0)[:, 0]
    present = _dense_indices(tf.sparse.map_values(tf.ones_like, sparse), 1, default=0.0)[:, 0]
    return tf.cast(value, tf.float32), tf.cast(present, tf.float32)


def item_key(item_ids: tf.Tensor) -> tf.Tensor:
    """Item id strings -> their keys (features.ITEM_KEY): a 62-bit hash plus one, so that 0 stays padding."""
    return tf.strings.to_hash_bucket_fast(item_ids, _ITEM_KEY_SPACE) + 1


def timestamp_part(timestamp: tf.Tensor, feature: features.Feature) -> tf.Tensor:
    """The hour (0-23) or weekday (Monday = 0) of Unix seconds at the feature's UTC offset, plus one (0: padding)."""
    local = tf.cast(timestamp, tf.int64) + int(round(feature.utc_offset_hours * 3600))
    if feature.part == "hour":
        return tf.math.floormod(tf.math.floordiv(local, 3600), 24) + 1
    return tf.math.floormod(tf.math.floordiv(local, 86400) + 3, 7) + 1  # 1970-01-01 was a Thursday


def declared_feature(inputs: dict[str, Any], feature: features.Feature) -> tf.Tensor:
    """A declared feature's model input: indices (batch,) or (batch, max_values) with 0 for missing or padding,
    or for a z-scored numeric feature (batch, 2) pairs of (normalised value, present); a missing value is 0, the
    training mean."""
    if feature.type == features.TIMESTAMP_PART:
        return timestamp_part(_squeeze(inputs[features.TIMESTAMP]), feature)
    raw = inputs[feature.name]
    if feature.type == features.NUMERIC:
        if feature.normalization == features.QUANTILES:
            indices = tft.bucketize(raw, feature.buckets)
            return _dense_indices(_shifted(indices), 1)[:, 0]
        if feature.normalization == features.LOG1P:
            raw = tf.sparse.map_values(tf.math.log1p, raw)
        value, present = _first_value(tft.scale_to_z_score(raw))
        return tf.stack([value * present, present], axis=1)
    if feature.hash_buckets:
        indices = tf.sparse.map_values(tf.strings.to_hash_bucket_fast, raw, feature.hash_buckets)
    else:
        indices = tft.compute_and_apply_vocabulary(raw, num_oov_buckets=OOV_BUCKETS,
                                                   vocab_filename=feature.vocabulary_name)
    dense = _dense_indices(_shifted(indices), feature.width)
    return dense if feature.type == features.MULTI_CATEGORICAL else dense[:, 0]


def item_text(inputs: dict[str, Any]) -> tf.Tensor:
    """The text the encoder reads: title, categories and description."""
    categories = tf.strings.reduce_join(tf.RaggedTensor.from_sparse(inputs[features.CATEGORIES]), axis=-1,
                                        separator=", ")
    return tf.strings.join(
        [_squeeze(inputs[features.TITLE]), categories, _squeeze(inputs[features.DESCRIPTION])], separator=". ")


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, tf.Tensor]:
    """Raw features -> model inputs and labels. `custom_config` carries the text preset, the lengths, the tasks and
    the declared features."""
    vocabulary = text_encoder.load_vocabulary(custom_config["text_preset"])
    outputs: dict[str, tf.Tensor] = {}

    outputs[features.USER_INDEX] = tft.compute_and_apply_vocabulary(
        _squeeze(inputs[features.USER_ID]), num_oov_buckets=OOV_BUCKETS, vocab_filename=features.USER_VOCABULARY)
    item_vocabulary = tft.vocabulary(_squeeze(inputs[features.ITEM_ID]), vocab_filename=features.ITEM_VOCABULARY)
    outputs[features.ITEM_INDEX] = 1 + tft.apply_vocabulary(
        _squeeze(inputs[features.ITEM_ID]), item_vocabulary, num_oov_buckets=OOV_BUCKETS)
    history = tft.apply_vocabulary(inputs[features.HISTORY], item_vocabulary, num_oov_buckets=OOV_BUCKETS)
    outputs[features.HISTORY_INDICES] = _dense_indices(_shifted(history), custom_config["history_length"])
    outputs[features.HISTORY_KEYS] = _dense_indices(tf.sparse.map_values(item_key, inputs[features.HISTORY]),
                                                    custom_config["history_length"])
    outputs[features.ITEM_KEY] = item_key(_squeeze(inputs[features.ITEM_ID]))
    categories = tft.compute_and_apply_vocabulary(
        inputs[features.CATEGORIES], num_oov_buckets=OOV_BUCKETS, vocab_filename=features.CATEGORY_VOCABULARY)
    outputs[features.CATEGORY_INDICES] = _dense_indices(_shifted(categories), custom_config["max_categories"])

    token_ids, padding_mask = tokenize(item_text(inputs), vocabulary, custom_config["text_max_length"])
    outputs[features.TEXT_TOKEN_IDS] = token_ids
    outputs[features.TEXT_PADDING_MASK] = padding_mask

    for feature in features.declared(custom_config["features"]):
        outputs[feature.input_name] = declared_feature(inputs, feature)

    for task in custom_config["tasks"]:
        if task["label"]:
            label = tf.cast(_squeeze(inputs[task["label"]]), tf.float32)
            outputs[features.transformed_label(task["name"])] = (
                tf.math.log1p(label) if task.get("label_transform") == "log1p" else label)
    return outputs
