"""TFMA configuration: per-task metrics, absolute thresholds and change thresholds against the baseline."""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from models import features
from pipeline.config import Evaluation


def _bound(lower: float | None = None, upper: float | None = None) -> tfma.GenericValueThreshold:
    threshold = tfma.GenericValueThreshold()
    if lower is not None:
        threshold.lower_bound.value = lower
    if upper is not None:
        threshold.upper_bound.value = upper
    return threshold


def eval_config(thresholds: Evaluation) -> tfma.EvalConfig:
    """Click: AUC, calibration, mean label/prediction; rating: RMSE; both: example count."""
    click_auc = tfma.MetricConfig(
        class_name="AUC",
        threshold=tfma.MetricThreshold(
            value_threshold=_bound(lower=thresholds.min_click_auc),
            change_threshold=tfma.GenericChangeThreshold(
                direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                absolute={"value": -thresholds.max_click_auc_decrease})))
    rating_rmse = tfma.MetricConfig(
        class_name="RootMeanSquaredError",
        threshold=tfma.MetricThreshold(
            value_threshold=_bound(upper=thresholds.max_rating_rmse),
            change_threshold=tfma.GenericChangeThreshold(
                direction=tfma.MetricDirection.LOWER_IS_BETTER,
                absolute={"value": thresholds.max_rating_rmse_increase})))
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
