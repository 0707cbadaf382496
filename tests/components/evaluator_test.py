"""The Evaluator gates every regression task against the train-mean predictor: the baseline is computed from the
splits' label (and weight) columns as TFMA weighs the model's RMSE, and it tightens the RMSE bound only where it
is stricter than max_rmse."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_model_analysis.proto import config_pb2 as tfma

from components.evaluator import executor
from pipeline import evaluation
from pipeline.config import Evaluation, Task

TASKS = [Task("retrieval", "retrieval", "clicked"), Task("click", "binary", "clicked"),
         Task("rating", "regression", "rating"),
         Task("watch", "regression", "watch_time", given="click")]  # weighted by the click label


def _write_split(uri: str, rows: list[tuple[int, float, float]]) -> None:
    """Gzipped TFRecords of (clicked, rating, watch_time) examples, in two files as ExampleGen writes a split."""
    os.makedirs(uri)
    for part in range(2):
        with tf.io.TFRecordWriter(os.path.join(uri, f"data_tfrecord-{part:05d}-of-00002.gz"), "GZIP") as writer:
            for clicked, rating, watch in rows[part::2]:
                writer.write(tf.train.Example(features=tf.train.Features(feature={
                    "clicked": tf.train.Feature(int64_list=tf.train.Int64List(value=[clicked])),
                    "rating": tf.train.Feature(float_list=tf.train.FloatList(value=[rating])),
                    "watch_time": tf.train.Feature(float_list=tf.train.FloatList(value=[watch])),
                    "item_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"not read"])),
                })).SerializeToString())


@pytest.fixture
def splits(tmp_path):
    # train: rating mean (1 + 2 + 3 + 6) / 4 = 3; watch_time over the clicked rows only: (10 + 30) / 2 = 20.
    _write_split(str(tmp_path / "Split-train"), [(1, 1.0, 10.0), (0, 2.0, 99.0), (1, 3.0, 30.0), (0, 6.0, 99.0)])
    # eval: rating RMSE of 3: sqrt(((2 - 3)^2 + (5 - 3)^2) / 2) = sqrt(2.5);
    # watch_time over the clicked row only: sqrt((23 - 20)^2 / 1) = 3.
    _write_split(str(tmp_path / "Split-eval"), [(0, 2.0, 0.0), (1, 5.0, 23.0)])
    return str(tmp_path / "Split-train"), str(tmp_path / "Split-eval")


def _thresholds(config: tfma.EvalConfig, output: str, class_name: str) -> list[tfma.MetricThreshold]:
    (spec,) = [s for s in config.metrics_specs if list(s.output_names) == [output] and not s.query_key]
    (metric,) = [m for m in spec.metrics if m.class_name == class_name]
    return [per_slice.threshold for per_slice in metric.per_slice_thresholds]


def _rmse_bound(config: tfma.EvalConfig, output: str) -> float:
    (threshold,) = _thresholds(config, output, executor.RMSE_METRIC)
    return threshold.value_threshold.upper_bound.value


def test_train_mean_baseline_by_hand():
    # Unweighted: mean (1 + 2 + 3 + 6) / 4 = 3, eval RMSE sqrt(((2 - 3)^2 + (5 - 3)^2) / 2) = sqrt(2.5).
    ones = np.ones(4)
    baseline = executor.train_mean_baseline(np.array([1.0, 2, 3, 6]), ones, np.array([2.0, 5]), np.ones(2))
    assert baseline == pytest.approx({"train_mean": 3.0, "root_mean_squared_error": math.sqrt(2.5)})
    # Weighted: mean (1 + 3) / 2 = 2, eval RMSE over the weighted rows sqrt(((2 - 2)^2 + (5 - 2)^2) / 2) = sqrt(4.5).
    baseline = executor.train_mean_baseline(np.array([1.0, 2, 3, 6]), np.array([1.0, 0, 1, 0]),
                                            np.array([2.0, 5, 9]), np.array([1.0, 1, 0]))
    assert baseline == pytest.approx({"train_mean": 2.0, "root_mean_squared_error": math.sqrt(4.5)})
    # No weighted train example: no baseline.
    assert executor.train_mean_baseline(np.ones(2), np.zeros(2), np.ones(2), np.ones(2)) is None


def test_trivial_baselines_of_a_hand_built_split(splits):
    config = evaluation.eval_config(Evaluation(), TASKS)
    baselines = executor.trivial_baselines(config, *splits)
    assert sorted(baselines) == ["click", "rating", "watch"]  # not retrieval
    # click: 1 positive of 2 eval examples, rate 0.5: allowance exp(2 * sqrt((1 - 0.5) / 1)) = exp(sqrt(2)).
    assert baselines["click"] == pytest.approx({"auc": 0.5, "calibration": 1.0,
                                                "calibration_allowance": math.exp(math.sqrt(2))})
    assert baselines["rating"] == pytest.approx({"train_mean": 3.0, "root_mean_squared_error": math.sqrt(2.5)})
    assert baselines["watch"] == pytest.approx({"train_mean": 20.0, "root_mean_squared_error": 3.0})


def test_read_columns_parses_only_the_named_columns_with_their_own_types(splits):
    columns = executor.read_columns(splits[0], {"clicked", "rating"})
    assert sorted(columns) == ["clicked", "rating"]
    assert sorted(columns["rating"]) == [1.0, 2.0, 3.0, 6.0] and sorted(columns["clicked"]) == [0, 0, 1, 1]


def test_the_calibration_allowance_by_hand():
    # 4 positives of 100, rate 0.04: exp(2 * sqrt(0.96 / 4)) = exp(0.9798).
    labels = np.array([1.0] * 4 + [0.0] * 96)
    assert executor.calibration_allowance(labels, np.ones(100)) == pytest.approx(math.exp(2 * math.sqrt(0.24)))
    # Weighted by a given label: 2 positives among the 4 weighted examples, rate 0.5: exp(2 * sqrt(0.5 / 2)) = e.
    weights = np.array([1.0, 1, 0, 0, 1, 1])
    assert executor.calibration_allowance(np.array([1.0, 1, 1, 1, 0, 0]), weights) == pytest.approx(math.e)
    # Many positives, hardly any allowance: exp(2 * sqrt(0.5 / 5000)) = exp(0.02); none: no calibration to gate.
    assert executor.calibration_allowance(np.array([1.0, 0] * 5000), np.ones(10000)) == pytest.approx(math.exp(0.02))
    assert executor.calibration_allowance(np.zeros(5), np.ones(5)) is None


def test_the_calibration_band_is_widened_by_its_allowance_or_dropped(splits):
    config = evaluation.eval_config(Evaluation(min_calibration=0.5, max_calibration=2.0), [
        *TASKS, Task("like", "binary", "clicked", given="rating")])
    baselines = executor.trivial_baselines(config, *splits)
    baselines["like"].pop("calibration_allowance")  # as if no eval positive
    executor.apply_baselines(config, baselines)
    (click,) = _thresholds(config, "click", executor.CALIBRATION_METRIC)
    allowance = math.exp(math.sqrt(2))
    assert click.value_threshold.lower_bound.value == pytest.approx(0.5 / allowance)
    assert click.value_threshold.upper_bound.value == pytest.approx(2.0 * allowance)
    assert _thresholds(config, "like", executor.CALIBRATION_METRIC) == []


def test_the_stricter_of_max_rmse_and_the_baseline_bounds_the_rmse(splits):
    config = evaluation.eval_config(Evaluation(max_rmse=1.5, per_task={"watch": {"max_rmse": 2.0}}), TASKS)
    assert _rmse_bound(config, "rating") == 1.5 and _rmse_bound(config, "watch") == 2.0
    executor.apply_baselines(config, executor.trivial_baselines(config, *splits))
    # rating: the baseline sqrt(2.5) = 1.58 is looser than 1.5; watch: the baseline 3 is looser than 2.
    assert _rmse_bound(config, "rating") == 1.5 and _rmse_bound(config, "watch") == 2.0
    config = evaluation.eval_config(Evaluation(max_rmse=10.0), TASKS)
    executor.apply_baselines(config, executor.trivial_baselines(config, *splits))
    assert _rmse_bound(config, "rating") == pytest.approx(math.sqrt(2.5))
    assert _rmse_bound(config, "watch") == pytest.approx(3.0)


def test_an_empty_split_is_an_error_naming_it(tmp_path):
    os.makedirs(tmp_path / "Split-train")
    with pytest.raises(ValueError, match="Split-train: no examples"):
        executor.read_columns(str(tmp_path / "Split-train"), {"rating"})
