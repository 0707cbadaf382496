"""The evaluation settings: TFMA's (per-task metrics, absolute thresholds, each task's trivial baseline among them,
and change thresholds against the baseline) and the RetrievalEvaluator's."""

from __future__ import annotations

import dataclasses
from typing import Any

# The protos themselves: tfma's top level exports them only once other TFX modules have been imported.
from tensorflow_model_analysis.proto import config_pb2 as tfma

from components.evaluator.executor import AUC_METRIC, RANDOM_AUC, RMSE_METRIC
from models import features
from pipeline import tfma_metrics
from pipeline.config import Evaluation, Retrieval, Task


def _overall_gate(class_name: str, threshold: tfma.MetricThreshold) -> tfma.MetricConfig:
    """A metric gated by `threshold` on the overall slice only. (A plain `threshold` would apply to every slice,
    so a handful of cold-item examples could veto a good model.)"""
    return tfma.MetricConfig(class_name=class_name, per_slice_thresholds=[
        tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)])


def _gated_metric(class_name: str, limit: float, worst_change: float, higher_is_better: bool) -> tfma.MetricConfig:
    """A metric that must reach `limit` and may worsen by at most `worst_change` against the baseline."""
    value_threshold = tfma.GenericValueThreshold()
    if higher_is_better:
        value_threshold.lower_bound.value = limit
    else:
        value_threshold.upper_bound.value = limit
    return _overall_gate(class_name, tfma.MetricThreshold(
        value_threshold=value_threshold,
        change_threshold=tfma.GenericChangeThreshold(
            direction=(tfma.MetricDirection.HIGHER_IS_BETTER if higher_is_better
                       else tfma.MetricDirection.LOWER_IS_BETTER),
            absolute={"value": -worst_change if higher_is_better else worst_change})))


def _task_metrics(task: Task, thresholds: Evaluation) -> tfma.MetricsSpec:
    """A binary task's AUC must reach min_auc and beat the random ranker's 0.5 by min_auc_lift, and its calibration
    lie in [min_calibration, max_calibration]. A regression task's RMSE bound is max_rmse here; the Evaluator
    tightens it to the train-mean predictor's RMSE at run time (components/evaluator)."""
    if task.type == "binary":
        return tfma.MetricsSpec(output_names=[task.name], metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            _gated_metric(AUC_METRIC, max(thresholds.min_auc, RANDOM_AUC + thresholds.min_auc_lift),
                          thresholds.max_auc_decrease, higher_is_better=True),
            _overall_gate("Calibration", tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
                lower_bound={"value": thresholds.min_calibration},
                upper_bound={"value": thresholds.max_calibration}))),
            tfma.MetricConfig(class_name="MeanLabel"),
            tfma.MetricConfig(class_name="MeanPrediction"),
        ])
    return tfma.MetricsSpec(output_names=[task.name], metrics=[
        tfma.MetricConfig(class_name="ExampleCount"),
        _gated_metric(RMSE_METRIC, thresholds.max_rmse, thresholds.max_rmse_increase, higher_is_better=False),
    ])


def eval_config(thresholds: Evaluation, tasks: list[Task]) -> tfma.EvalConfig:
    """Per ranking task: binary -> AUC and calibration (gated), GAUC, mean label and prediction; regression ->
    RMSE (gated; mtrec's Evaluator adds the train-mean bound); both -> example count. A task's gates are its
    `per_task` thresholds where it has them. A task conditioned on another (`given`, not entire-space) is weighted
    by the given task's label. Retrieval is measured by the benchmarks, not by TFMA."""
    ranking = [task for task in tasks if task.type != "retrieval"]
    labels = {task.name: task.label for task in tasks}
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name=features.SERVING_SIGNATURE,
            label_keys={task.name: task.label for task in ranking},
            # A conditioned task is measured where it is trained: on the events whose given label is 1.
            example_weight_keys={task.name: labels[task.given] for task in ranking
                                 if task.given and not task.entire_space})],
        metrics_specs=[*(_task_metrics(task, thresholds.for_task(task.name)) for task in ranking),
                       # GAUC: each user's AUC, averaged by the user's impressions (TFMA groups examples by user).
                       *(tfma.MetricsSpec(output_names=[task.name], query_key=features.USER_ID, metrics=[
                           tfma.MetricConfig(class_name="GAUC", module=tfma_metrics.__name__)])
                         for task in ranking if task.type == "binary")],
        # Overall, per item popularity (cold items included) and user activity bucket, and per value of each
        # declared feature named in `thresholds.slices`.
        slicing_specs=[tfma.SlicingSpec(),
                       *(tfma.SlicingSpec(feature_keys=[name])
                         for name in (*features.SLICE_FEATURES, *(thresholds.slices or ())))],
    )


def retrieval_settings(retrieval: Retrieval, tasks: list[Task]) -> dict[str, Any] | None:
    """The RetrievalEvaluator's settings: the retrieval task's label column (positives: label > 0; null: every
    event) and how ExampleGen writes it (int64 for a column some task reads as binary, else float), and the
    cutoffs and gate of `retrieval`. None without a retrieval task: there is nothing to evaluate."""
    retrieval_task = next((task for task in tasks if task.type == "retrieval"), None)
    if retrieval_task is None:
        return None
    kind = features.label_columns(tasks).get(retrieval_task.label)
    return {"label": retrieval_task.label, "label_dtype": "int" if kind == features.BINARY_LABEL else "float",
            **dataclasses.asdict(retrieval)}
