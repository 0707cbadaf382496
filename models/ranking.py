"""Multi-task architectures for the ranking heads: shared-bottom, MMoE and PLE.

Each maps one input vector (batch, features) to one representation per task, and a task tower on top of each
turns it into that task's output. Shared-bottom shares everything below the towers; MMoE (Ma et al., KDD 2018)
mixes shared experts with a softmax gate per task; PLE (Tang et al., RecSys 2020) adds experts private to each
task and stacks extraction levels, so tasks that conflict need not share every expert.
"""

from __future__ import annotations

from typing import Any

import keras

ARCHITECTURES = ("shared_bottom", "mmoe", "ple")


@keras.saving.register_keras_serializable(package="mtrec")
class MLP(keras.layers.Layer):
    """Dense layers with ReLU.

    Args:
        units: list of int. Width of each layer.
    """

    def __init__(self, units: list[int], **kwargs: Any):
        super().__init__(**kwargs)
        self.units = list(units)
        self.dense_layers = [keras.layers.Dense(width, activation="relu", name=f"dense_{i}")
                             for i, width in enumerate(self.units)]

    def call(self, inputs: Any) -> Any:
        for layer in self.dense_layers:
            inputs = layer(inputs)
        return inputs

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], self.units[-1] if self.units else input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="mtrec")
class SharedBottom(keras.layers.Layer):
    """One MLP shared by every task; each task gets the same representation.

    Args:
        num_tasks: int. Number of ranking tasks.
        expert_units: list of int. Layer widths of the shared MLP.
    """

    def __init__(self, num_tasks: int, expert_units: list[int], **kwargs: Any):
        super().__init__(**kwargs)
        self.num_tasks = num_tasks
        self.expert_units = list(expert_units)
        self.bottom = MLP(self.expert_units, name="bottom")

    def call(self, inputs: Any) -> list[Any]:
        shared = self.bottom(inputs)
        return [shared] * self.num_tasks

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_tasks": self.num_tasks, "expert_units": self.expert_units}


def _mix(gate: keras.layers.Layer, gate_input: Any, experts: list[Any]) -> Any:
    """Softmax-gated sum of expert outputs: (batch, units)."""
    weights = keras.ops.expand_dims(gate(gate_input), -1)  # (batch, experts, 1)
    return keras.ops.sum(weights * keras.ops.stack(experts, axis=1), axis=1)


@keras.saving.register_keras_serializable(package="mtrec")
class MMoE(keras.layers.Layer):
    """Multi-gate mixture of experts: `num_experts` shared MLPs, one softmax gate per task over them.

    Args:
        num_tasks: int. Number of ranking tasks.
        num_experts: int. Number of shared experts.
        expert_units: list of int. Layer widths of every expert.
    """

    def __init__(self, num_tasks: int, num_experts: int, expert_units: list[int], **kwargs: Any):
        super().__init__(**kwargs)
        self.num_tasks = num_tasks
        self.num_experts = num_experts
        self.expert_units = list(expert_units)
        self.experts = [MLP(self.expert_units, name=f"expert_{i}") for i in range(num_experts)]
        self.gates = [keras.layers.Dense(num_experts, activation="softmax", name=f"gate_{t}")
                      for t in range(num_tasks)]

    def call(self, inputs: Any) -> list[Any]:
        experts = [expert(inputs) for expert in self.experts]
        return [_mix(gate, inputs, experts) for gate in self.gates]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_tasks": self.num_tasks, "num_experts": self.num_experts,
                "expert_units": self.expert_units}


@keras.saving.register_keras_serializable(package="mtrec")
class PLE(keras.layers.Layer):
    """Progressive layered extraction: per level, experts private to each task plus shared experts.

    A task's gate mixes its own and the shared experts; below the last level a shared gate mixes all experts
    into the next level's shared input.

    Args:
        num_tasks: int. Number of ranking tasks.
        num_shared_experts: int. Shared experts per level.
        num_task_experts: int. Private experts per task and level.
        num_levels: int. Number of stacked extraction levels.
        expert_units: list of int. Layer widths of every expert.
    """

    def __init__(self, num_tasks: int, num_shared_experts: int, num_task_experts: int, num_levels: int,
                 expert_units: list[int], **kwargs: Any):
        super().__init__(**kwargs)
        self.num_tasks = num_tasks
        self.num_shared_experts = num_shared_experts
        self.num_task_experts = num_task_experts
        self.num_levels = num_levels
        self.expert_units = list(expert_units)
        self.shared_experts = [[MLP(self.expert_units, name=f"level_{lv}_shared_{i}")
                                for i in range(num_shared_experts)] for lv in range(num_levels)]
        self.task_experts = [[[MLP(self.expert_units, name=f"level_{lv}_task_{t}_expert_{i}")
                               for i in range(num_task_experts)] for t in range(num_tasks)]
                             for lv in range(num_levels)]
        self.task_gates = [[keras.layers.Dense(num_task_experts + num_shared_experts, activation="softmax",
                                               name=f"level_{lv}_task_{t}_gate") for t in range(num_tasks)]
                           for lv in range(num_levels)]
        total = num_tasks * num_task_experts + num_shared_experts
        self.shared_gates = [keras.layers.Dense(total, activation="softmax", name=f"level_{lv}_shared_gate")
                             for lv in range(num_levels - 1)]

    def call(self, inputs: Any) -> list[Any]:
        task_inputs, shared_input = [inputs] * self.num_tasks, inputs
        for level in range(self.num_levels):
            shared = [expert(shared_input) for expert in self.shared_experts[level]]
            private = [[expert(task_inputs[t]) for expert in self.task_experts[level][t]]
                       for t in range(self.num_tasks)]
            outputs = [_mix(self.task_gates[level][t], task_inputs[t], private[t] + shared)
                       for t in range(self.num_tasks)]
            if level < self.num_levels - 1:
                everything = [expert for experts in private for expert in experts] + shared
                shared_input = _mix(self.shared_gates[level], shared_input, everything)
            task_inputs = outputs
        return task_inputs

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_tasks": self.num_tasks,
                "num_shared_experts": self.num_shared_experts, "num_task_experts": self.num_task_experts,
                "num_levels": self.num_levels, "expert_units": self.expert_units}


def build_architecture(name: str, num_tasks: int, num_experts: int, num_task_experts: int, num_levels: int,
                       expert_units: list[int]) -> keras.layers.Layer:
    """The architecture `name` (one of ARCHITECTURES) for `num_tasks` ranking tasks."""
    if name == "shared_bottom":
        return SharedBottom(num_tasks, expert_units, name="shared_bottom")
    if name == "mmoe":
        return MMoE(num_tasks, num_experts, expert_units, name="mmoe")
    if name == "ple":
        return PLE(num_tasks, num_experts, num_task_experts, num_levels, expert_units, name="ple")
    raise ValueError(f"`architecture` should be one of {ARCHITECTURES}. Received: `architecture` = {name!r}")
