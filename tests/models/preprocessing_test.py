"""Transform: vocabularies with OOV buckets, history/category padding, and the in-graph WordPiece tokenizer."""

from __future__ import annotations

import dataclasses
import tempfile

import keras_hub
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from models import features, preprocessing, text_encoder

CONFIG = {"text_preset": "minilm", "text_max_length": 12, "history_length": 3, "max_categories": 2,
          "tasks": [{"name": "retrieval", "label": None}, {"name": "click", "label": "clicked"},
                    {"name": "rating", "label": "rating"},
                    {"name": "log_rating", "label": "rating", "label_transform": "log1p"}],
          "features": []}


@pytest.fixture(scope="module")
def vocabulary():
    return text_encoder.load_vocabulary("minilm")


def test_tokenizer_matches_keras_hub_wordpiece(vocabulary):
    texts = ["Rocket Galaxy. space, sky. An orbit of planets!", "unbelievably tokenizable", "x"]
    token_ids, padding_mask = preprocessing.tokenize(tf.constant(texts), vocabulary, 12)
    reference = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    for row, text in enumerate(texts):
        expected = [vocabulary.index("[CLS]"), *np.asarray(reference(text)).tolist()[:10], vocabulary.index("[SEP]")]
        length = int(padding_mask[row].numpy().sum())
        assert token_ids[row, :length].numpy().tolist() == expected
        assert token_ids[row, length:].numpy().tolist() == [0] * (12 - length)  # [PAD] is id 0


def test_tokenizer_strips_accents_like_uncased_bert(vocabulary):
    """Hugging Face's uncased BERT tokenizer strips accents ("Café" -> "cafe"); KerasHub's does not."""
    token_ids, _ = preprocessing.tokenize(tf.constant(["Café"]), vocabulary, 4)
    assert [vocabulary[i] for i in token_ids[0].numpy()] == ["[CLS]", "cafe", "[SEP]", "[PAD]"]


def test_tokenizer_uses_only_ops_tf_serving_bundles(vocabulary):
    """The graph holds the classic TF Text ops, not FastBertNormalize and friends (see platform.md)."""
    fn = tf.function(lambda text: preprocessing.tokenize(text, vocabulary, 12))
    graph = fn.get_concrete_function(tf.TensorSpec([None], tf.string)).graph
    ops = {op.type for op in graph.get_operations()}
    assert "WordpieceTokenizeWithOffsets" in ops and "CaseFoldUTF8" in ops
    assert not {op for op in ops if op.startswith("Fast")}


def _transform(rows, declared=()):
    spec = {
        **{feature.name: tf.io.VarLenFeature(tf.float32 if feature.type == features.NUMERIC else tf.string)
           for feature in declared if feature.column},
        features.TIMESTAMP: tf.io.FixedLenFeature([], tf.int64),
        features.USER_ID: tf.io.FixedLenFeature([], tf.string),
        features.ITEM_ID: tf.io.FixedLenFeature([], tf.string),
        features.TITLE: tf.io.FixedLenFeature([], tf.string),
        features.DESCRIPTION: tf.io.FixedLenFeature([], tf.string),
        features.CATEGORIES: tf.io.VarLenFeature(tf.string),
        features.HISTORY: tf.io.VarLenFeature(tf.string),
        features.CLICKED: tf.io.FixedLenFeature([], tf.int64),
        features.RATING: tf.io.FixedLenFeature([], tf.float32),
    }
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    config = {**CONFIG, "features": [dataclasses.asdict(feature) for feature in declared]}
    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        (transformed, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing.preprocessing_fn(inputs, config))
    return transformed


def _row(user, item, history, categories, clicked=1, timestamp=0, **declared):
    return {features.USER_ID: user, features.ITEM_ID: item, features.TITLE: f"title {item}",
            features.DESCRIPTION: "", features.CATEGORIES: categories, features.HISTORY: history,
            features.CLICKED: clicked, features.RATING: 4.0, features.TIMESTAMP: timestamp, **declared}


def test_vocabularies_oov_and_padding():
    rows = [_row("u1", "a", [], ["x"]), _row("u1", "a", ["a"], ["x"]), _row("u2", "b", ["a", "b", "zz", "a"], [])]
    out = _transform(rows)
    # Vocabularies are sorted by frequency: item a (2) -> 0, b -> 1, OOV bucket -> 2; +1 keeps 0 for padding.
    assert [r[features.ITEM_INDEX] for r in out] == [1, 1, 2]
    assert out[2][features.HISTORY_INDICES].tolist() == [1, 2, 3]  # "zz" is OOV; truncated to 3
    assert out[0][features.HISTORY_INDICES].tolist() == [0, 0, 0]
    assert out[0][features.CATEGORY_INDICES].tolist() == [1, 0]
    assert out[2][features.CATEGORY_INDICES].tolist() == [0, 0]
    assert [r[features.USER_INDEX] for r in out] == [0, 0, 1]
    assert [r[features.transformed_label("click")] for r in out] == [1.0, 1.0, 1.0]
    assert out[0][features.transformed_label("rating")] == 4.0
    assert out[0][features.transformed_label("log_rating")] == pytest.approx(np.log1p(4.0))
    assert out[0][features.TEXT_TOKEN_IDS].shape == (CONFIG["text_max_length"],)
    assert out[0][features.TEXT_PADDING_MASK].sum() >= 4  # [CLS] title a [SEP] at least


DECLARED = [
    features.Feature("device", features.EVENTS_SOURCE, features.CATEGORICAL),
    features.Feature("author", features.ITEMS_SOURCE, features.CATEGORICAL, hash_buckets=16),
    features.Feature("tags", features.ITEMS_SOURCE, features.MULTI_CATEGORICAL, max_values=2),
    features.Feature("age", features.USERS_SOURCE, features.NUMERIC),
    features.Feature("tenure", features.USERS_SOURCE, features.NUMERIC, normalization=features.LOG1P),
    features.Feature("price", features.ITEMS_SOURCE, features.NUMERIC, normalization=features.QUANTILES, buckets=2),
    features.Feature("hour", features.EVENTS_SOURCE, features.TIMESTAMP_PART, part="hour", utc_offset_hours=8),
    features.Feature("weekday", features.EVENTS_SOURCE, features.TIMESTAMP_PART, part="weekday"),
]


def test_every_declared_feature_type_becomes_a_model_input():
    # 2022-04-25 00:30 UTC (a Monday) is 08:30 in UTC+8.
    monday = 1650846600
    rows = [
        _row("u1", "a", [], [], timestamp=monday, device=["tv"], author=["x"], tags=["t1", "t2", "t3"], age=[20.0],
             tenure=[0.0], price=[1.0]),
        _row("u2", "b", [], [], timestamp=monday + 86400 * 6, device=["tv"], author=["y"], tags=["t2"], age=[40.0],
             tenure=[np.e - 1], price=[9.0]),
        _row("u3", "a", [], [], timestamp=monday, device=["phone"], author=[], tags=[], age=[], tenure=[],
             price=[]),
    ]
    out = _transform(rows, DECLARED)
    column = {feature.name: [row[feature.input_name] for row in out] for feature in DECLARED}
    # Categorical: vocabulary by frequency (tv 2 -> 0, phone -> 1), +1 so that 0 is missing.
    assert column["device"] == [1, 1, 2]
    # Hashed into 16 buckets, +1 so that 0 is missing.
    expected = (tf.strings.to_hash_bucket_fast(["x", "y"], 16) + 1).numpy().tolist()
    assert column["author"] == [*expected, 0]
    # Multi-categorical: t2 (2) -> 1, then ties in reverse order, t3 -> 2, t1 -> 3; the first max_values values,
    # padded with 0.
    assert [list(values) for values in column["tags"]] == [[3, 1], [1, 0], [0, 0]]
    # Numeric, z-scored over the present values (mean 30, std 10), with a presence flag; missing is (0, 0).
    np.testing.assert_allclose(np.stack(column["age"]), [[-1.0, 1.0], [1.0, 1.0], [0.0, 0.0]], atol=1e-5)
    # log1p, then z-scored: log1p(0) = 0 and log1p(e - 1) = 1, so mean 0.5 and std 0.5.
    np.testing.assert_allclose(np.stack(column["tenure"]), [[-1.0, 1.0], [1.0, 1.0], [0.0, 0.0]], atol=1e-5)
    # Quantile buckets, +1 so that 0 is missing.
    assert column["price"][2] == 0 and column["price"][0] < column["price"][1]
    # Timestamp parts, +1: 08:30 at UTC+8 is hour 8; Monday is weekday 0, the Sunday after weekday 6.
    assert column["hour"] == [9, 9, 9]
    assert column["weekday"] == [1, 7, 1]
