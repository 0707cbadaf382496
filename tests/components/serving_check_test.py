"""The serving check lists a SavedModel's ops and fails, naming them, on ops TF Serving lacks."""

from __future__ import annotations

import dataclasses
import os

import pytest
import tensorflow as tf
import tensorflow_text as tf_text

from components.serving_check import ops
from pipeline import cli


def _save(tmp_path, fn) -> str:
    module = tf.Module()
    module.f = tf.function(fn, input_signature=[tf.TensorSpec([None], tf.string)])
    path = str(tmp_path / "model")
    tf.saved_model.save(module, path, signatures={"serving_default": module.f})
    return path


def test_core_and_bundled_text_ops_pass(tmp_path, capsys):
    path = _save(tmp_path, lambda text: {"folded": tf_text.case_fold_utf8(tf.strings.upper(text))})
    report = ops.check(path)
    assert report.passed and {"CaseFoldUTF8", "StringUpper"} <= set(report.ops)
    assert cli.main(["check-serving", path]) == 0
    assert "ops are in TF Serving's op set" in capsys.readouterr().out


def test_a_model_behind_a_uri_is_read_through_gfile(tmp_path):
    """Under Kubeflow the model artifact lives on gs://; TensorFlow's ram:// filesystem stands in for it here."""
    path = _save(tmp_path, lambda text: {"upper": tf.strings.upper(text)})
    remote = "ram://serving_check_test/model"
    tf.io.gfile.makedirs(remote)
    tf.io.gfile.copy(os.path.join(path, "saved_model.pb"), f"{remote}/saved_model.pb", overwrite=True)
    assert ops.check(remote) == dataclasses.replace(ops.check(path), model_dir=remote)


def test_newer_text_op_fails_and_is_named(tmp_path, capsys):
    tokenizer = tf_text.WhitespaceTokenizer()  # WhitespaceTokenizeWithOffsetsV2, newer than TF Serving's TF Text
    path = _save(tmp_path, lambda text: {"tokens": tokenizer.tokenize(text).to_tensor("")})
    report = ops.check(path)
    assert not report.passed
    assert report.disallowed_ops == ("TFText>WhitespaceTokenizeWithOffsetsV2",)
    assert cli.main(["check-serving", path]) == 1
    assert "not in TF Serving's op set: TFText>WhitespaceTokenizeWithOffsetsV2" in capsys.readouterr().out


def test_not_a_saved_model(tmp_path, capsys):
    with pytest.raises(FileNotFoundError):
        ops.check(str(tmp_path))
    assert cli.main(["check-serving", str(tmp_path)]) == 2
    assert "no saved_model.pb" in capsys.readouterr().err
