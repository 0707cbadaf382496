"""Pusher: TFX's Pusher component with mtrec's atomic executor (components/pusher/executor.py).

A subclass rather than `custom_executor_spec`, which TFX deprecates; it keeps the component id "Pusher".
"""

from __future__ import annotations

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.pusher import executor


class Pusher(tfx.components.Pusher):
    """Copies a model blessed by the Evaluator and the serving check into a new serving version, atomically."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
