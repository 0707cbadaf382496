"""Which check kept a model from being pushed, or stopped a run, as the summary names it."""

from __future__ import annotations

from typing import Any

from components.data_gate.component import DataAnomaliesError
from pipeline import run_summary


def test_failed_checks_name_each_gate_that_failed():
    assert run_summary.failed_checks({"failed_thresholds": [], "serving_check": {"passed": True}}) == []
    absolute = "click/auc: 0.7000 fails lower_bound { value: 0.99 }"
    change = "click/auc (change vs baseline): -0.0500 fails upper_bound { value: -0.02 }"
    assert run_summary.failed_checks({"failed_thresholds": [absolute]}) == ["evaluator thresholds"]
    assert run_summary.failed_checks({"failed_thresholds": [change]}) == [
        "change thresholds against the latest blessed model"]
    assert run_summary.failed_checks({"failed_thresholds": [absolute, change],
                                      "serving_check": {"passed": False, "disallowed_ops": ["X"]}}) == [
        "evaluator thresholds", "change thresholds against the latest blessed model", "serving check"]
    refused = {"blessed": False, "failures": ["Recall@10 0.0100 is below 1.1x the popularity baseline's 0.2000"]}
    assert run_summary.failed_checks({"failed_thresholds": [], "retrieval": refused}) == ["retrieval gate"]
    assert run_summary.failed_checks({"failed_thresholds": [], "retrieval": {"blessed": True, "failures": []}}) == []


def test_a_run_stopped_by_the_data_gate_says_so():
    error = RuntimeError(f"{DataAnomaliesError.__name__}: the data is not fit to train on:\n  events.csv: ...")
    assert run_summary.failed_checks_of_error(error) == ["data gate"]
    assert run_summary.failed_checks_of_error(RuntimeError("Trainer: out of memory")) == []


def _failure(output: str, metric: str, value: float, lower: float | None = None, upper: float | None = None,
             is_diff: bool = False) -> Any:
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2, validation_result_pb2

    failure = validation_result_pb2.ValidationFailure(
        metric_key=metrics_for_slice_pb2.MetricKey(name=metric, output_name=output, is_diff=is_diff),
        metric_value=metrics_for_slice_pb2.MetricValue(double_value={"value": value}))
    bounds = failure.metric_threshold.value_threshold
    if lower is not None:
        bounds.lower_bound.value = lower
    if upper is not None:
        bounds.upper_bound.value = upper
    return failure


def test_failed_trivial_baseline_checks_are_named(tmp_path):
    import tensorflow as tf
    from tensorflow_model_analysis.proto import validation_result_pb2

    result = validation_result_pb2.ValidationResult(validation_ok=False, metric_validations_per_slice=[
        validation_result_pb2.MetricsValidationForSlice(failures=[
            _failure("rating", "root_mean_squared_error", 1.416, upper=1.398),  # worse than the train mean
            _failure("watch", "root_mean_squared_error", 1.2, upper=1.0),  # beats its train mean (1.3), not max_rmse
            _failure("click", "auc", 0.48, lower=0.6),  # worse than random
            _failure("like", "auc", 0.55, lower=0.6),  # better than random, below min_auc
            _failure("purchase", "calibration", 0.32, lower=0.5, upper=2.0),
            _failure("click", "auc", -0.05, upper=-0.02, is_diff=True)])])
    with tf.io.TFRecordWriter(str(tmp_path / "validations.tfrecord")) as writer:
        writer.write(result.SerializeToString())
    baselines = {"rating": {"train_mean": 3.5, "root_mean_squared_error": 1.398},
                 "watch": {"train_mean": 0.9, "root_mean_squared_error": 1.3},
                 **{task: {"auc": 0.5, "calibration": 1.0} for task in ("click", "like", "purchase")}}
    named = run_summary.failed_baseline_checks(str(tmp_path), baselines)
    assert named == {
        "rating/root_mean_squared_error": "rating: RMSE 1.416 is not below the train-mean predictor's 1.398",
        "click/auc": "click: AUC 0.480 does not beat the random ranker's 0.5",
        "purchase/calibration": "purchase: calibration 0.320 is outside [0.5, 2] (a calibrated model's is 1)",
    }
    summary = {"failed_thresholds": run_summary.failed_validations(str(tmp_path)), "failed_baseline_checks": named}
    # The other failures (watch's max_rmse, like's min_auc) are the evaluator thresholds'.
    assert run_summary.failed_checks(summary) == [
        "evaluator thresholds", *named.values(), "change thresholds against the latest blessed model"]
    summary["failed_thresholds"] = [f for f in summary["failed_thresholds"]
                                    if f.split(":")[0] in named or "change vs" in f]
    assert "evaluator thresholds" not in run_summary.failed_checks(summary)


def test_the_summary_shows_the_train_mean_predictor_beside_the_model():
    lines = run_summary.format_summary({
        "status": "succeeded", "output_dir": "out", "metrics": {"rating": {"root_mean_squared_error": 0.74}},
        "trivial_baselines": {"rating": {"train_mean": 3.516, "root_mean_squared_error": 1.1683},
                              "click": {"auc": 0.5, "calibration": 1.0}}}).splitlines()
    assert "  rating of the train-mean predictor (3.516): root_mean_squared_error 1.168" in lines
    assert not [line for line in lines if line.startswith("  click of")]
