"""How the task losses become one training loss: fixed weights, or learned uncertainty weighting.

Uncertainty weighting (Kendall, Gal and Cipolla, CVPR 2018) learns one log-variance s per task and minimises
exp(-s) * loss + s (halved for regression, whose likelihood is Gaussian), so a noisy task cannot drown the
others and no one has to hand-tune the weights. The configured weights still multiply each term, so a weight
of zero removes a task in both modes.
"""

from __future__ import annotations

from typing import Any

import keras

from models.tasks import REGRESSION, Task

LOSS_BALANCING = ("fixed", "uncertainty")


@keras.saving.register_keras_serializable(package="mtrec")
class FixedWeights(keras.layers.Layer):
    """The configured weighted sum."""

    def __init__(self, weights: dict[str, float], **kwargs: Any):
        super().__init__(**kwargs)
        self.task_weights = dict(weights)
        self.built = True  # nothing depends on the losses' shapes (as keras.layers.Dropout)

    def call(self, losses: dict[str, Any]) -> Any:
        return sum(self.task_weights[name] * loss for name, loss in losses.items())

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "weights": self.task_weights}


@keras.saving.register_keras_serializable(package="mtrec")
class UncertaintyWeights(keras.layers.Layer):
    """Weighted sum of exp(-s_t) * loss_t + s_t, with one trainable log-variance s_t per task.

    Args:
        weights: dict. Task name -> fixed multiplier (0 removes the task).
        scales: dict. Task name -> 0.5 for regression tasks, 1.0 for the others.
    """

    def __init__(self, weights: dict[str, float], scales: dict[str, float], **kwargs: Any):
        super().__init__(**kwargs)
        self.task_weights = dict(weights)
        self.scales = dict(scales)
        self.log_variances = {name: self.add_weight(shape=(), initializer="zeros", name=f"{name}_log_variance")
                              for name in self.task_weights}
        self.built = True  # the weights depend on the task list alone, not on the losses' shapes

    def call(self, losses: dict[str, Any]) -> Any:
        total = 0.0
        for name, loss in losses.items():
            s = self.log_variances[name]
            total = total + self.task_weights[name] * self.scales[name] * (keras.ops.exp(-s) * loss + s)
        return total

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "weights": self.task_weights, "scales": self.scales}


def build_loss_balancing(name: str, tasks: list[Task]) -> keras.layers.Layer:
    weights = {task.name: task.weight for task in tasks}
    if name == "fixed":
        return FixedWeights(weights, name="loss_balancing")
    if name == "uncertainty":
        scales = {task.name: 0.5 if task.type == REGRESSION else 1.0 for task in tasks}
        return UncertaintyWeights(weights, scales, name="loss_balancing")
    raise ValueError(f"`loss_balancing` should be one of {LOSS_BALANCING}. Received: `loss_balancing` = {name!r}")
