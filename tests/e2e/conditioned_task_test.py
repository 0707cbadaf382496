"""A post-click task conditioned on clicks (`given`, its loss masked) through the whole pipeline: the Evaluator
measures it on the clicked events only, GAUC included, and the model is blessed and pushed."""

from __future__ import annotations

import os

import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma

from pipeline import run_summary
from tests.e2e.local_e2e_test import run_to_summary, small_run_config


@pytest.mark.slow
def test_a_task_given_clicks_is_trained_and_measured_on_the_clicked_events(tmp_path):
    config = small_run_config(str(tmp_path / "out"))
    config["text_encoder"] = {"mode": "off"}
    config["model"] = {"tasks": [
        {"name": "retrieval", "type": "retrieval", "label": "clicked"},
        {"name": "click", "type": "binary", "label": "clicked"},
        {"name": "purchase", "type": "binary", "label": "purchased", "given": "click"},
        {"name": "rating", "type": "regression", "label": "rating", "given": "click"}]}
    config["evaluation"]["min_auc"] = 0.55  # the purchase AUC is not gated (see small_run_config)
    summary = run_to_summary(config, tmp_path)
    assert summary["blessed"] and summary["pushed"], summary
    metrics = summary["metrics"]
    store = run_summary.open_store(str(tmp_path / "out" / "metadata.sqlite"))
    artifacts = run_summary.latest_run_artifacts(store)
    # Weighted by the click label, the purchase task's mean label is the purchase rate among the clicked eval
    # events, not among all of them.
    examples = run_summary.produced_by(artifacts, "Examples", "EventsExampleGen")
    clicked = purchased = 0
    for record in tf.data.TFRecordDataset(tf.io.gfile.glob(os.path.join(examples.uri, "Split-eval", "*")),
                                          compression_type="GZIP"):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        clicked += feature["clicked"].int64_list.value[0]
        purchased += feature["purchased"].int64_list.value[0]
    assert 0 < purchased < clicked
    assert metrics["purchase"]["mean_label"] == pytest.approx(purchased / clicked, abs=1e-4)
    assert "gauc" in metrics["purchase"] and metrics["click"]["gauc"] > 0.55
    # The Evaluator computed the purchase metrics with example weights (the given label), and only so.
    [evaluation] = artifacts["ModelEvaluation"]
    weighted = {(entry.key.output_name, entry.key.example_weighted.value) for metrics_slice in tfma.load_metrics(
        evaluation.uri) for entry in metrics_slice.metric_keys_and_values if entry.key.name == "auc"}
    assert ("purchase", True) in weighted and ("purchase", False) not in weighted
    assert ("click", False) in weighted
