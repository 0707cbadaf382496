"""TFMA configuration: per-task metrics, absolute thresholds and change thresholds against the baseline."""

from __future__ import annotations

# The protos themselves: tfma's top level exports them only once other TFX modules have been imported.
from tensorflow_model_analysis.proto import config_pb2 as tfma

from models import features
from pipeline.config import Evaluation


def _gated_metric(class_name: str, limit: float, worst_change: float, higher_is_better: bool) -> tfma.MetricConfig:
    """A metric that must reach `limit` and may worsen by at most `worst_change` against the baseline."""
    value_threshold = tfma.GenericValueThreshold()
    if higher_is_better:
        value_threshold.lower_bound.value = limit
    else:
        value_threshold.upper_bound.value = limit
    return tfma.MetricConfig(class_name=class_name, threshold=tfma.MetricThreshold(
        value_threshold=value_threshold,
        change_threshold=tfma.GenericChangeThreshold(
            direction=(tfma.MetricDirection.HIGHER_IS_BETTER if higher_is_better
                       else tfma.MetricDirection.LOWER_IS_BETTER),
            absolute={"value": -worst_change if higher_is_better else worst_change})))


def eval_config(thresholds: Evaluation) -> tfma.EvalConfig:
    """Click: AUC, calibration, mean label/prediction; rating: RMSE; both: example count."""
    click_auc = _gated_metric("AUC", thresholds.min_click_auc, thresholds.max_click_auc_decrease,
                              higher_is_better=True)
    rating_rmse = _gated_metric("RootMeanSquaredError", thresholds.max_rating_rmse,
                                thresholds.max_rating_rmse_increase, higher_is_better=False)
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=features.SERVING_SIGNATURE, label_keys=dict(features.LABEL_KEYS))],
        metrics_specs=[
            tfma.MetricsSpec(output_names=[features.CLICK_PROBABILITY], metrics=[
                tfma.MetricConfig(class_name="ExampleCount"),
                click_auc,
                tfma.MetricConfig(class_name="Calibration"),
                tfma.MetricConfig(class_name="MeanLabel"),
                tfma.MetricConfig(class_name="MeanPrediction"),
            ]),
            tfma.MetricsSpec(output_names=[features.RATING_PREDICTION], metrics=[
                tfma.MetricConfig(class_name="ExampleCount"),
                rating_rmse,
            ]),
        ],
        # Overall, and per item popularity (cold items included) and user activity bucket.
        slicing_specs=[tfma.SlicingSpec(),
                       *(tfma.SlicingSpec(feature_keys=[name]) for name in features.SLICE_FEATURES)],
    )
