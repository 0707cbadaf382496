"""The text tower: pretrained MiniLM weights load offline and encode meaning; the layer config round-trips."""

from __future__ import annotations

import keras
import keras_hub
import numpy as np
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
