"""The run configuration: YAML in, validated dataclasses out, every problem reported at once.

Defaults run the built-in synthetic data end to end on a laptop CPU. Unknown keys, wrong types and impossible
values are all listed in one ConfigError before any work starts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import yaml

from pipeline.data.synthetic import SyntheticConfig


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem."""


@dataclasses.dataclass
class Data:
    """`source`: "synthetic" (generated), "csv" (`path` holds events.csv and items.csv) or "movielens"
    (`path` holds the GroupLens ML-100K files)."""

    source: str = "synthetic"
    path: str | None = None
    synthetic: SyntheticConfig = dataclasses.field(default_factory=SyntheticConfig)


@dataclasses.dataclass
class ExampleGen:
    history_length: int = 20
    split: str = "time"
    eval_fraction: float = 0.2
    seed: int = 42


@dataclasses.dataclass
class TextEncoder:
    """`preset`: "minilm" (bundled weights), a local Hugging Face/KerasHub BERT directory or a KerasHub preset.
    `backbone`: BertBackbone sizes (num_layers, num_heads, hidden_dim, intermediate_dim) for a randomly
    initialised encoder over the preset's vocabulary instead of the pretrained weights."""

    preset: str = "minilm"
    trainable: bool = False
    max_length: int = 32
    backbone: dict[str, int] | None = None


@dataclasses.dataclass
class Model:
    embedding_dim: int = 32
    hidden_dim: int = 64
    temperature: float = 0.1
    max_categories: int = 4
    task_weights: dict[str, float] = dataclasses.field(
        default_factory=lambda: {"retrieval": 1.0, "click": 1.0, "rating": 1.0})


@dataclasses.dataclass
class Training:
    epochs: int = 3
    batch_size: int = 256
    learning_rate: float = 0.01
    seed: int = 42


@dataclasses.dataclass
class Evaluation:
    """Absolute thresholds, and the most a new model may lose against the latest blessed one."""

    min_click_auc: float = 0.6
    max_rating_rmse: float = 1.5
    max_click_auc_decrease: float = 0.02
    max_rating_rmse_increase: float = 0.1


@dataclasses.dataclass
class RunConfig:
    """`output_dir` receives the converted data, the pipeline root, ML Metadata and the serving directory."""

    output_dir: str = "mtrec_runs"
    pipeline_name: str = "mtrec"
    data: Data = dataclasses.field(default_factory=Data)
    example_gen: ExampleGen = dataclasses.field(default_factory=ExampleGen)
    text_encoder: TextEncoder = dataclasses.field(default_factory=TextEncoder)
    model: Model = dataclasses.field(default_factory=Model)
    training: Training = dataclasses.field(default_factory=Training)
    evaluation: Evaluation = dataclasses.field(default_factory=Evaluation)


# Values that must be positive, and those that must lie strictly between 0 and 1.
_POSITIVE = {"num_users", "num_items", "events_per_user", "history_length", "max_length", "embedding_dim",
             "hidden_dim", "temperature", "max_categories", "epochs", "batch_size", "learning_rate",
             "max_rating_rmse", "num_layers", "num_heads", "intermediate_dim"}
_FRACTIONS = {"eval_fraction", "min_click_auc"}
_CHOICES = {"source": ("synthetic", "csv", "movielens"), "split": ("time", "random")}
_TASKS = ("retrieval", "click", "rating")


def _check_value(path: str, name: str, value: Any, problems: list[str]) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if name in _POSITIVE and value <= 0:
            problems.append(f"{path}: must be positive, got {value}")
        if name in _FRACTIONS and not 0 < value < 1:
            problems.append(f"{path}: must be between 0 and 1, got {value}")
        if name in {"cold_item_fraction", "max_click_auc_decrease", "max_rating_rmse_increase"} and value < 0:
            problems.append(f"{path}: must not be negative, got {value}")
    if name in _CHOICES and value not in _CHOICES[name]:
        problems.append(f"{path}: must be one of {list(_CHOICES[name])}, got {value!r}")


def _matches(value: Any, expected: Any) -> bool:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, option) for option in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if origin is dict:
        key_type, value_type = typing.get_args(expected)
        return isinstance(value, dict) and all(
            _matches(k, key_type) and _matches(v, value_type) for k, v in value.items())
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _build(cls: type, values: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(values, dict):
        problems.append(f"{path or 'config'}: expected a mapping, got {type(values).__name__}")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {field.name for field in dataclasses.fields(cls)}
    for unknown in sorted(set(values) - fields):
        problems.append(f"{path + '.' if path else ''}{unknown}: unknown key (known: {sorted(fields)})")
    kwargs = {}
    for name in fields & set(values):
        value, expected, where = values[name], hints[name], f"{path + '.' if path else ''}{name}"
        if dataclasses.is_dataclass(expected):
            kwargs[name] = _build(expected, value, where, problems)
            continue
        if not _matches(value, expected):
            problems.append(f"{where}: expected {getattr(expected, '__name__', expected)}, got {value!r}")
            continue
        _check_value(where, name, value, problems)
        if isinstance(value, dict):
            for key, item in value.items():
                _check_value(f"{where}.{key}", key, item, problems)
        kwargs[name] = float(value) if expected is float else value
    return cls(**kwargs)


def _check_run(config: RunConfig, problems: list[str]) -> None:
    if config.data.source != "synthetic" and not config.data.path:
        problems.append(f"data.path: required when data.source is {config.data.source!r}")
    unknown_tasks = sorted(set(config.model.task_weights) - set(_TASKS))
    if unknown_tasks:
        problems.append(f"model.task_weights: unknown task(s) {unknown_tasks}; known: {list(_TASKS)}")
    if any(weight < 0 for weight in config.model.task_weights.values()):
        problems.append(f"model.task_weights: weights must not be negative, got {config.model.task_weights}")
    elif not any(config.model.task_weights.values()):
        problems.append("model.task_weights: at least one task needs a positive weight")
    if config.text_encoder.max_length < 3:
        problems.append(f"text_encoder.max_length: must be at least 3 ([CLS], a token, [SEP]), "
                        f"got {config.text_encoder.max_length}")
    if config.text_encoder.backbone is not None:
        needed = {"num_layers", "num_heads", "hidden_dim", "intermediate_dim"}
        if set(config.text_encoder.backbone) != needed:
            problems.append(f"text_encoder.backbone: needs exactly the keys {sorted(needed)}, "
                            f"got {sorted(config.text_encoder.backbone)}")


def from_dict(values: dict[str, Any]) -> RunConfig:
    problems: list[str] = []
    config = _build(RunConfig, values, "", problems)
    if not problems:
        _check_run(config, problems)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return config


def load(path: str | None) -> RunConfig:
    """The configuration of YAML file `path` over the defaults; the defaults alone when `path` is None."""
    if path is None:
        return RunConfig()
    try:
        with open(path, encoding="utf-8") as handle:
            values = yaml.safe_load(handle)
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: configuration file not found") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    try:
        return from_dict(values or {})
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def to_dict(config: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
