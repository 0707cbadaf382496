"""The Trainer: its training log is written through tf.io.gfile, so the model_run artifact may be a URI; the
frozen text cache covers every text a batch can hold."""

from __future__ import annotations

import json
import os
import types

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from benchmarks import small_model
from components.example_gen import input_contract
from models import features, trainer


def test_training_log_is_written_behind_a_uri():
    """Under Kubeflow the model_run artifact lives on gs://; TensorFlow's ram:// filesystem stands in for it.
    (One epoch: a ram:// file opened for writing again is appended to, unlike a local or gs:// one.)"""
    path = "ram://trainer_test/model_run/" + trainer.TRAINING_LOG_FILE
    log = trainer.TrainingLog(path, types.SimpleNamespace(learning_rate=0.5))
    log.on_epoch_end(0, {"loss": 1.5, "val_loss": 1.75})
    with tf.io.gfile.GFile(path) as handle:
        assert json.load(handle) == [{"epoch": 1, "learning_rate": 0.5, "loss": 1.5, "val_loss": 1.75}]


def test_the_frozen_text_cache_holds_the_unknown_items_text(sequence_model):
    """History padding and ids outside the catalogue read the unknown item's content (models.catalogue): with its
    text outside the cache, every batch with a padded history would run the encoder on all of its rows."""
    data_dir, _ = sequence_model
    tft_output = tft.TFTransformOutput(os.path.join(os.path.dirname(data_dir), "transform"))
    catalogue = list(input_contract.read_items(os.path.join(data_dir, input_contract.ITEMS_FILE)).values())
    cached = trainer.build_text_encoder(small_model.TRAINER_CONFIG, tft_output, catalogue)
    rows = trainer.transform_catalogue(tft_output, catalogue, [], with_unknown=True)
    texts = {name: rows[name] for name in (features.TEXT_TOKEN_IDS, features.TEXT_PADDING_MASK)}
    assert len(texts[features.TEXT_TOKEN_IDS]) == len(catalogue) + 1
    encoded = []
    encode = cached.encoder.encode
    cached.encoder.encode = lambda *args: encoded.append(args) or encode(*args)
    vectors = np.asarray(cached(texts))  # eager: only the branch taken runs
    assert encoded == []  # every text, the unknown item's included, came from the cache
    np.testing.assert_allclose(vectors, encode(*texts.values()), atol=1e-5)

