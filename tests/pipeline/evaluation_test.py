"""The Evaluator's gates come from the configuration: absolute bounds and allowed change per task."""

from __future__ import annotations

import pytest
from tensorflow_model_analysis.proto import config_pb2 as tfma

from models import features
from pipeline import evaluation
from pipeline.config import Evaluation, Task, default_tasks


def _metric(config: tfma.EvalConfig, output: str, class_name: str) -> tfma.MetricConfig:
    (spec,) = [s for s in config.metrics_specs if list(s.output_names) == [output] and not s.query_key]
    (metric,) = [m for m in spec.metrics if m.class_name == class_name]
    (per_slice,) = metric.per_slice_thresholds
    assert list(per_slice.slicing_specs) == [tfma.SlicingSpec()]  # the overall slice only
    assert not metric.HasField("threshold")  # which would apply to every slice
    return per_slice


def test_thresholds_follow_the_configuration():
    config = evaluation.eval_config(Evaluation(min_auc=0.7, max_rmse=1.2, max_auc_decrease=0.03,
                                               max_rmse_increase=0.05), default_tasks())
    auc = _metric(config, features.CLICK_PROBABILITY, "AUC").threshold
    assert auc.value_threshold.lower_bound.value == 0.7 and not auc.value_threshold.HasField("upper_bound")
    assert auc.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    assert auc.change_threshold.absolute.value == -0.03
    rmse = _metric(config, features.RATING_PREDICTION, "RootMeanSquaredError").threshold
    assert rmse.value_threshold.upper_bound.value == 1.2 and not rmse.value_threshold.HasField("lower_bound")
    assert rmse.change_threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
    assert rmse.change_threshold.absolute.value == 0.05
    assert config.model_specs[0].label_keys == {features.CLICK_TASK: features.CLICKED,
                                                features.RATING_TASK: features.RATING}
    assert [list(s.feature_keys) for s in config.slicing_specs] == [[], *([n] for n in features.SLICE_FEATURES)]


def test_a_conditioned_task_is_measured_on_its_given_events_and_esmm_on_every_event():
    tasks = [Task("click", "binary", "is_click"), Task("like", "binary", "is_like", given="click"),
             Task("follow", "binary", "is_follow", given="click", entire_space=True),
             Task("watch", "regression", "watch_ratio", given="click")]
    (spec,) = evaluation.eval_config(Evaluation(), tasks).model_specs
    assert dict(spec.label_keys) == {"click": "is_click", "like": "is_like", "follow": "is_follow",
                                     "watch": "watch_ratio"}
    # AUC and RMSE of a masked task are weighted by the click label; the ESMM product is measured everywhere.
    assert dict(spec.example_weight_keys) == {"like": "is_click", "watch": "is_click"}


def test_gauc_is_computed_per_user_by_tfma_and_loads_from_the_eval_config():
    import numpy as np
    from tensorflow_model_analysis.metrics import metric_specs, metric_util
    from tensorflow_model_analysis.utils import util as tfma_util

    from pipeline import tfma_metrics

    config = evaluation.eval_config(Evaluation(), default_tasks())
    (gauc_spec,) = [spec for spec in config.metrics_specs if spec.query_key]
    assert gauc_spec.query_key == features.USER_ID and list(gauc_spec.output_names) == [features.CLICK_TASK]
    computations = metric_specs.to_computations([gauc_spec], config)  # TFMA imports the class from the config
    (gauc,) = [c for c in computations if any(key.name == tfma_metrics.GAUC_NAME for key in c.keys)]

    def user(labels, predictions):  # one query: a user's examples, merged as TFMA's query grouping does
        return metric_util.to_standard_metric_inputs(tfma_util.merge_extracts([
            {"labels": {features.CLICK_TASK: np.array([label])},
             "predictions": {features.CLICK_TASK: np.array([prediction])},
             "example_weights": {features.CLICK_TASK: np.array([1.0])},
             "features": {features.USER_ID: np.array(["u"])}}
            for label, prediction in zip(labels, predictions, strict=True)]), True)

    combiner = gauc.combiner
    first, second = combiner.create_accumulator(), combiner.create_accumulator()
    combiner.add_input(first, user([1, 0, 0], [0.9, 0.5, 0.95]))  # AUC 0.5 over 3 impressions
    combiner.add_input(second, user([1, 0], [0.2, 0.7]))  # AUC 0.0 over 2
    combiner.add_input(second, user([1, 1], [0.3, 0.4]))  # positives only: no AUC, left out
    (value,) = combiner.extract_output(combiner.merge_accumulators([first, second])).values()
    assert value == pytest.approx(1.5 / 5)


def test_declared_features_named_in_slices_are_sliced_by():
    config = evaluation.eval_config(Evaluation(slices=["device", "age_group"]), default_tasks())
    assert [list(s.feature_keys) for s in config.slicing_specs] == [
        [], *([n] for n in features.SLICE_FEATURES), ["device"], ["age_group"]]


def test_a_task_may_have_thresholds_of_its_own():
    tasks = [Task("click", "binary", "is_click"), Task("follow", "binary", "is_follow"),
             Task("watch", "regression", "watch_ratio")]
    config = evaluation.eval_config(Evaluation(per_task={"follow": {"min_auc": 0.55}, "watch": {"max_rmse": 3.0}}),
                                    tasks)
    assert _metric(config, "click", "AUC").threshold.value_threshold.lower_bound.value == 0.6
    assert _metric(config, "follow", "AUC").threshold.value_threshold.lower_bound.value == 0.55
    assert _metric(config, "follow", "AUC").threshold.change_threshold.absolute.value == -0.02  # the overall one
    assert _metric(config, "watch", "RootMeanSquaredError").threshold.value_threshold.upper_bound.value == 3.0


def test_binary_tasks_must_beat_a_random_ranker_and_be_calibrated():
    """The AUC bound is the stricter of min_auc and 0.5 + min_auc_lift; the calibration band is gated on the
    overall slice, without a change threshold; a task's own values replace them."""
    config = evaluation.eval_config(Evaluation(min_auc=0.51, min_auc_lift=0.05, min_calibration=0.8,
                                               max_calibration=1.25, per_task={"purchase": {
                                                   "min_auc": 0.7, "min_calibration": 0.3}}),
                                    default_tasks("synthetic"))
    assert _metric(config, features.CLICK_TASK, "AUC").threshold.value_threshold.lower_bound.value == 0.55
    assert _metric(config, features.PURCHASE_TASK, "AUC").threshold.value_threshold.lower_bound.value == 0.7
    for task, lower in ((features.CLICK_TASK, 0.8), (features.PURCHASE_TASK, 0.3)):
        calibration = _metric(config, task, "Calibration").threshold
        assert calibration.value_threshold.lower_bound.value == lower
        assert calibration.value_threshold.upper_bound.value == 1.25
        assert not calibration.HasField("change_threshold")
    assert not [m for s in config.metrics_specs if list(s.output_names) == [features.RATING_TASK]
                for m in s.metrics if m.class_name == "Calibration"]
