"""The Trainer's training log is written through tf.io.gfile, so the model_run artifact may be a URI."""

from __future__ import annotations

import json
import types

import tensorflow as tf

from models import trainer


def test_training_log_is_written_behind_a_uri():
    """Under Kubeflow the model_run artifact lives on gs://; TensorFlow's ram:// filesystem stands in for it.
    (One epoch: a ram:// file opened for writing again is appended to, unlike a local or gs:// one.)"""
    path = "ram://trainer_test/model_run/" + trainer.TRAINING_LOG_FILE
    log = trainer.TrainingLog(path, types.SimpleNamespace(learning_rate=0.5))
    log.on_epoch_end(0, {"loss": 1.5, "val_loss": 1.75})
    with tf.io.gfile.GFile(path) as handle:
        assert json.load(handle) == [{"epoch": 1, "learning_rate": 0.5, "loss": 1.5, "val_loss": 1.75}]
