"""GAUC as a TFMA metric, so that the Evaluator reports it beside AUC.

GAUC is a query metric: its MetricsSpec sets `query_key` to the user id, TFMA groups the eval examples by user,
and the combiner adds each user's AUC (models.metrics) weighted by the user's impressions. A task weighted by
another's label (`given`) counts only the weighted events of each user.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

from models.metrics import GaucAccumulator

GAUC_NAME = "gauc"


class GAUC(metric_types.Metric):
    """Per-user AUC averaged by impressions; users with one class only are left out. Needs the spec's query_key."""

    def __init__(self, name: str = GAUC_NAME):
        super().__init__(_gauc_computations, name=name)


metric_types.register_metric(GAUC)


def _gauc_computations(name: str = GAUC_NAME, eval_config: Any = None, model_names: list[str] | None = None,
                       output_names: list[str] | None = None, example_weighted: bool = False,
                       query_key: str = "") -> metric_types.MetricComputations:
    if not query_key:
        raise ValueError("GAUC needs the metrics spec's query_key (the user id feature)")
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                         example_weighted=example_weighted)
            computations.append(metric_types.MetricComputation(
                keys=[key], preprocessors=None, combiner=_GaucCombiner(key, eval_config, example_weighted)))
    return computations


class _GaucCombiner(beam.CombineFn):
    """Each element is one user's examples (a query); the accumulator sums their AUCs by impressions."""

    def __init__(self, key: metric_types.MetricKey, eval_config: Any, example_weighted: bool):
        self._key = key
        self._eval_config = eval_config
        self._example_weighted = example_weighted

    def create_accumulator(self) -> GaucAccumulator:
        return GaucAccumulator()

    def add_input(self, accumulator: GaucAccumulator, element: metric_types.StandardMetricInputs
                  ) -> GaucAccumulator:
        labels, predictions, weights = next(metric_util.to_label_prediction_example_weight(
            element, eval_config=self._eval_config, model_name=self._key.model_name,
            output_name=self._key.output_name, example_weighted=self._example_weighted, flatten=False))
        predictions = np.asarray(predictions, np.float64).reshape(-1)
        accumulator.add(np.asarray(labels).reshape(-1), predictions,
                        np.broadcast_to(np.asarray(weights, np.float64).reshape(-1), predictions.shape))
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[GaucAccumulator]) -> GaucAccumulator:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for accumulator in accumulators:
            result.merge(accumulator)
        return result

    def extract_output(self, accumulator: GaucAccumulator) -> dict[metric_types.MetricKey, float]:
        return {self._key: accumulator.value()}
