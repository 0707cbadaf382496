"""The text tower: pretrained MiniLM weights load offline and encode meaning; the layer config round-trips."""

from __future__ import annotations

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from models import features, preprocessing, text_encoder


def _encode(encoder, vocabulary, texts, length=16):
    token_ids, padding_mask = preprocessing.tokenize(tf.constant(texts), vocabulary, length)
    vectors = np.asarray(encoder({features.TEXT_TOKEN_IDS: token_ids, features.TEXT_PADDING_MASK: padding_mask}))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_bundled_minilm_loads_offline_and_encodes_meaning():
    vocabulary = text_encoder.load_vocabulary(text_encoder.MINILM)
    assert len(vocabulary) == 30522
    backbone = text_encoder.build_backbone(text_encoder.MINILM, None, 16)
    assert backbone.num_layers == 6 and backbone.hidden_dim == 384
    encoder = text_encoder.TextEncoder(backbone, trainable=False)
    space, astronomy, cooking = _encode(encoder, vocabulary, [
        "rocket launch into orbit", "astronaut and planets in the galaxy", "pasta recipe with tomato sauce"])
    assert space @ astronomy > space @ cooking + 0.1
    assert not encoder.trainable_weights  # frozen


def test_random_backbone_uses_the_preset_vocabulary():
    sizes = {"num_layers": 1, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16}
    backbone = text_encoder.build_backbone(text_encoder.MINILM, sizes, 12)
    assert backbone.vocabulary_size == 30522 and backbone.hidden_dim == 8


def test_padding_does_not_change_the_encoding():
    vocabulary = text_encoder.load_vocabulary(text_encoder.MINILM)
    backbone = text_encoder.build_backbone(
        text_encoder.MINILM, {"num_layers": 1, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16}, 24)
    encoder = text_encoder.TextEncoder(backbone)
    short = _encode(encoder, vocabulary, ["rocket galaxy"], length=8)
    long = _encode(encoder, vocabulary, ["rocket galaxy"], length=24)
    np.testing.assert_allclose(short, long, atol=1e-5)


def test_config_round_trips():
    backbone = keras_hub.models.BertBackbone(vocabulary_size=20, num_layers=1, num_heads=2, hidden_dim=4,
                                             intermediate_dim=8, max_sequence_length=6)
    encoder = text_encoder.TextEncoder(backbone, trainable=False, name="text")
    restored = keras.layers.deserialize(keras.layers.serialize(encoder))
    assert isinstance(restored, text_encoder.TextEncoder)
    assert restored.get_config() == encoder.get_config()
    assert restored.trainable is False


class _CountingEncoder(text_encoder.TextEncoder):
    """Counts the rows it encodes, in the graph, so calls inside `fit` count too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows = tf.Variable(0, dtype=tf.int64, trainable=False)

    def encode(self, token_ids, padding_mask):
        self.rows.assign_add(tf.shape(token_ids, out_type=tf.int64)[0])
        return super().encode(token_ids, padding_mask)


def _small_backbone():
    return keras_hub.models.BertBackbone(vocabulary_size=30, num_layers=1, num_heads=2, hidden_dim=8,
                                         intermediate_dim=16, max_sequence_length=6)


def test_frozen_encoder_runs_once_per_distinct_item_text():
    encoder = _CountingEncoder(_small_backbone())
    cached = text_encoder.CachedTextEncoder(encoder)
    rng = np.random.default_rng(0)
    distinct = rng.integers(1, 30, (12, 6))
    catalogue = np.concatenate([distinct, distinct[:4]])  # two items share a text: encoded once
    assert cached.build_cache(catalogue, np.ones_like(catalogue)) == 12
    assert int(encoder.rows.numpy()) == 12
    # Many epochs of events over catalogue items never run the encoder again, eager or in a tf.function.
    events = {features.TEXT_TOKEN_IDS: distinct[rng.integers(0, 12, 64)], features.TEXT_PADDING_MASK:
              np.ones((64, 6), "int64")}
    eager = cached(events)
    graph = tf.function(cached)(events)
    assert int(encoder.rows.numpy()) == 12
    np.testing.assert_allclose(eager, encoder(events), atol=1e-5)
    np.testing.assert_allclose(graph, eager, atol=1e-6)
    # A text outside the cache (an item unknown at training time) is encoded on the fly, not dropped.
    unknown = {features.TEXT_TOKEN_IDS: np.full((2, 6), 29), features.TEXT_PADDING_MASK: np.ones((2, 6), "int64")}
    before = int(encoder.rows.numpy())
    np.testing.assert_allclose(cached(unknown), encoder(unknown), atol=1e-5)
    # The fallback encodes both rows; the reference call encodes the one distinct text among them.
    assert int(encoder.rows.numpy()) == before + 3


def test_cls_pooling_takes_the_first_token_and_finetuning_trains_only_the_top_layers():
    backbone = keras_hub.models.BertBackbone(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=6)
    encoder = text_encoder.TextEncoder(backbone, pooling="cls", trainable_layers=1)
    inputs = {features.TEXT_TOKEN_IDS: np.array([[2, 5, 7, 3, 0, 0]]),
              features.TEXT_PADDING_MASK: np.array([[1, 1, 1, 1, 0, 0]])}
    sequence = backbone({"token_ids": inputs[features.TEXT_TOKEN_IDS], "segment_ids": np.zeros((1, 6), "int64"),
                         "padding_mask": inputs[features.TEXT_PADDING_MASK]})["sequence_output"]
    np.testing.assert_allclose(encoder(inputs), sequence[:, 0], atol=1e-6)
    trainable = [v.path for v in encoder.trainable_variables]
    assert trainable and all("transformer_layer_1/" in path for path in trainable), trainable
    with pytest.raises(ValueError, match="pooling"):
        text_encoder.TextEncoder(backbone, pooling="max")
