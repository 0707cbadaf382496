"""Evaluator: TFX's Evaluator component with mtrec's executor (components/evaluator/executor.py), which also gates
every regression task against the train-mean predictor.

A subclass rather than `custom_executor_spec`, which TFX deprecates; it keeps the component id "Evaluator".
"""

from __future__ import annotations

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.evaluator import executor


class Evaluator(tfx.components.Evaluator):
    """TFMA's per-task metrics and thresholds, a regression task's RMSE bound tightened to its train-mean
    predictor's, and every task's trivial baseline written beside the evaluation."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
