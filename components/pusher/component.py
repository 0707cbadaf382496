"""Pusher: TFX's Pusher with mtrec's atomic executor (components/pusher/executor.py) and one more gate, the
RetrievalEvaluator's verdict.

A subclass rather than `custom_executor_spec`, which TFX deprecates; it keeps the component id "Pusher".
"""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.pusher import component as pusher_component
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts, standard_component_specs
from tfx.utils import json_utils

from components.artifacts import RetrievalEvaluation
from components.pusher import executor
from components.pusher.executor import RETRIEVAL_EVALUATION_KEY


class PusherSpec(standard_component_specs.PusherSpec):
    """TFX's Pusher inputs plus the RetrievalEvaluation whose `blessed` property must be 1."""

    INPUTS = {**standard_component_specs.PusherSpec.INPUTS,
              RETRIEVAL_EVALUATION_KEY: component_spec.ChannelParameter(type=RetrievalEvaluation, optional=True)}


class Pusher(pusher_component.Pusher):
    """Copies a model blessed by the Evaluator, the serving check and the retrieval evaluation into a new serving
    version, atomically."""

    SPEC_CLASS = PusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel,
                 infra_blessing: types.BaseChannel, push_destination: Any,
                 retrieval_evaluation: types.BaseChannel | None = None):
        # TFX's Pusher builds its own spec class, so this builds the extended one and skips its constructor.
        base_component.BaseComponent.__init__(self, spec=PusherSpec(
            model=model, model_blessing=model_blessing, infra_blessing=infra_blessing,
            retrieval_evaluation=retrieval_evaluation, push_destination=push_destination,
            custom_config=json_utils.dumps(None),
            pushed_model=types.Channel(type=standard_artifacts.PushedModel)))
