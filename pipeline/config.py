"""The run configuration: YAML in, validated dataclasses out, every problem reported at once.

Defaults run the built-in synthetic data end to end on a laptop CPU. Unknown keys, wrong types and impossible
values are all listed in one ConfigError before any work starts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from typing import Any

import yaml

from components.example_gen import window
from models import features
from models.features import Feature
from pipeline import beam_options
from pipeline.data.synthetic import SyntheticConfig

_URI = re.compile(r"^[a-z][a-z0-9+.-]*://")


def is_uri(path: str) -> bool:
    """Whether `path` is a URI (gs://..., s3://...) rather than a local or mounted path: read through tf.io.gfile
    where the pipeline runs, so not checked here."""
    return bool(_URI.match(path))


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem."""


@dataclasses.dataclass
class Data:
    """`source`: "synthetic" (generated), "csv" (`path` holds events.csv and items.csv), "movielens" (`path`
    holds the GroupLens ML-100K files) or "kuairand" (`path` holds the KuaiRand-Pure logs and tables; it has no
    item text, so the text tower must be off).

    Daily partitions (csv): `path` holds `events/YYYY-MM-DD.csv`, one file per day, beside items.csv (and
    users.csv). `window_days` reads the latest N days up to `day` (default: the latest day there is), or `span`
    names the days to read; `missing_days` says what a day of the window without a file does: "refuse" (the run
    stops, naming it) or "skip" (the window reads the days there are). `mtrec run --data-day DAY` sets `day`."""

    source: str = "synthetic"
    path: str | None = None
    window_days: int | None = None
    span: list[str] | None = None
    day: str | None = None
    missing_days: str = "refuse"
    synthetic: SyntheticConfig = dataclasses.field(default_factory=SyntheticConfig)

    @property
    def partitioned(self) -> bool:
        """Whether the events are daily partitions (events/DAY.csv) read through a window."""
        return self.window_days is not None or self.span is not None


@dataclasses.dataclass
class ExampleGen:
    history_length: int = 20
    split: str = "time"
    eval_fraction: float = 0.2
    seed: int = 42


@dataclasses.dataclass
class TextEncoder:
    """`preset`: "minilm" (bundled weights), a local Hugging Face/KerasHub BERT directory or a KerasHub preset.
    `mode`: "frozen" (each distinct item text encoded once), "finetune" (the top `trainable_layers` layers train)
    or "off" (no text tower). `pooling`: "mean" or "cls". `distinct_texts`: each batch encodes its distinct texts
    once (false: every row, the per-event cost; only fine-tuning runs the encoder per batch). `backbone`:
    BertBackbone sizes (num_layers, num_heads, hidden_dim, intermediate_dim) for a randomly initialised encoder over
    the preset's vocabulary instead of the pretrained weights."""

    preset: str = "minilm"
    mode: str = "frozen"
    trainable_layers: int = 2
    pooling: str = "mean"
    max_length: int = 32
    distinct_texts: bool = True
    backbone: dict[str, int] | None = None


@dataclasses.dataclass
class Task:
    """`type`: "retrieval", "binary" or "regression". `label`: the column of events.csv holding the label (any
    column but the event keys: 0/1 for a binary task, a finite number for regression); for retrieval the column
    that weights positives, or null (every event is a positive). `weight`: the loss weight.
    `given`: the name of a binary task this one is conditioned on: its loss (and its Evaluator metrics) count only
    the events whose given label is 1, e.g. a like given a click. `entire_space` (binary, with `given`): ESMM
    instead, the prediction is p(given) * p(this | given), trained and evaluated on every event, for a label that
    implies the given one (a conversion implies a click). `label_transform`: "none" or "log1p" (regression, on a
    label >= 0). `label_range`: [min, max] the label must lie in (the data gate checks it), or null."""

    name: str = ""
    type: str = "binary"
    label: str | None = None
    weight: float = 1.0
    given: str | None = None
    entire_space: bool = False
    label_transform: str = "none"
    label_range: list[float] | None = None


def default_tasks(source: str = "csv") -> list[Task]:
    """The tasks of a run that names none: retrieval, click and rating on the CSV contract's `clicked` and
    `rating`; the built-in synthetic data adds its sparse purchases, as an ESMM task over the clicks; KuaiRand has
    tasks of its own (`kuairand_tasks`)."""
    if source == "kuairand":
        return kuairand_tasks()
    tasks = [Task(features.RETRIEVAL_TASK, "retrieval", features.CLICKED),
             Task(features.CLICK_TASK, "binary", features.CLICKED),
             Task(features.RATING_TASK, "regression", features.RATING, label_range=[0.0, 5.0])]
    if source == "synthetic":
        tasks.append(Task(features.PURCHASE_TASK, "binary", features.PURCHASED, given=features.CLICK_TASK,
                          entire_space=True))
    return tasks


def default_task_thresholds(source: str) -> dict[str, dict[str, float]]:
    """`evaluation.per_task` of a run with the data source's default tasks that names none. The built-in synthetic
    data's ESMM purchase head has a calibration band from 0.2: its calibration measured 0.86, 0.83, 0.27 and 0.32
    in four runs of the same default config (about 60 eval purchases, a chance allowance of 1.29), so a band from
    0.5 refused the default run at random."""
    return {features.PURCHASE_TASK: {"min_calibration": 0.2}} if source == "synthetic" else {}


def kuairand_tasks() -> list[Task]:
    """KuaiRand's tasks: retrieval of clicked videos, five of its feedback signals and the watch ratio."""
    from pipeline.data import kuairand

    return [Task(features.RETRIEVAL_TASK, "retrieval", "is_click"),
            *(Task(name, "binary", column) for name, column in (
                (features.CLICK_TASK, "is_click"), ("long_view", "long_view"), ("like", "is_like"),
                ("follow", "is_follow"), ("comment", "is_comment"))),
            Task(kuairand.WATCH_RATIO, "regression", kuairand.WATCH_RATIO, label_transform="log1p")]


def default_features(source: str = "csv") -> list[Feature]:
    """The declared features of a run that names none: none for the CSV contract and MovieLens (today's
    contract); the built-in synthetic data's and KuaiRand's own otherwise."""
    if source == "synthetic":
        from pipeline.data import synthetic

        return synthetic.declared_features()
    if source == "kuairand":
        from pipeline.data import kuairand

        return kuairand.declared_features()
    return []


@dataclasses.dataclass
class Model:
    """`type`: "mtrec" or "tfrs" (the TensorFlow Recommenders multitask tutorial model, as a baseline).
    `architecture` of the ranking heads: "shared_bottom", "mmoe" or "ple"; `num_experts` are MMoE's experts or
    PLE's shared experts per level. `loss_balancing`: "fixed" (task weights) or "uncertainty" (learned).
    `use_categories`: whether the item tower reads the item's categories (text mode "off" plus no categories
    is an ids-only model). `feature_embedding_dim`: the embedding size of each declared categorical feature.
    `item_id_dropout`: the share of training examples whose item the item tower sees through the unknown-id row,
    so that row is trained and new items are carried by their text and categories (models.id_dropout).
    `user_tower`: "mean" (the mean id embedding of the history) or "transformer" (`sequence_layers` KerasHub
    TransformerEncoder layers of `sequence_heads` heads over the history, each position read through the item
    tower with a position embedding, so order, recency and a new item's text count). `target_attention`: the
    candidate attends over the history (DIN) and the result joins the ranking heads' input.
    `tasks`: null (the default) takes the data source's default tasks (`default_tasks`)."""

    type: str = "mtrec"
    embedding_dim: int = 32
    architecture: str = "mmoe"
    num_experts: int = 4
    num_task_experts: int = 1
    num_levels: int = 2
    expert_units: list[int] = dataclasses.field(default_factory=lambda: [64])
    tower_units: list[int] = dataclasses.field(default_factory=lambda: [32])
    feature_cross_layers: int = 1
    temperature: float = 0.1
    logq_correction: bool = True
    loss_balancing: str = "fixed"
    use_categories: bool = True
    max_categories: int = 4
    feature_embedding_dim: int = 8
    item_id_dropout: float = 0.1
    user_tower: str = "mean"
    sequence_layers: int = 1
    sequence_heads: int = 2
    target_attention: bool = False
    tasks: list[Task] | None = None


@dataclasses.dataclass
class Training:
    """`batch_size` is global: a distribution strategy splits each batch among its replicas. `distribution`:
    "default" (one device), "mirrored" (one replica per local GPU, or per logical CPU device without a GPU),
    "multi_worker_mirrored" (workers from TF_CONFIG) or "tpu". `mixed_precision`: "none", "mixed_float16" or
    "mixed_bfloat16" (outputs and losses stay float32). `jit_compile`: XLA-compile the training step.
    `optimizer`: "lazy_adam" (Adam that updates only the embedding rows a batch touches, so a step's cost does
    not grow with the tables; models/optimizers.py) or "adam" (Keras' Adam, every row at every step).
    `warm_start`: start from the latest blessed model's weights (models/warm_start.py: embedding rows carried by id
    string, other weights where their shapes match) and train `warm_start_epochs` epochs; the first run, with no
    blessed model yet, trains `epochs` from scratch."""

    epochs: int = 3
    batch_size: int = 256
    learning_rate: float = 0.01
    optimizer: str = "lazy_adam"
    seed: int = 42
    distribution: str = "default"
    mixed_precision: str = "none"
    jit_compile: bool = False
    warm_start: bool = False
    warm_start_epochs: int = 1


def _text_encoder_off() -> dict[str, Any]:
    return {"text_encoder": {"mode": "off"}}


@dataclasses.dataclass
class Distillation:
    """Knowledge distillation (models/distillation.py): the run trains a student that learns from the labels and
    from a teacher's outputs, and evaluates, gates and pushes it like any model. `teacher`: "latest_blessed" (the
    pipeline's latest blessed model, found through ML Metadata; when that model is itself a student, the teacher
    it learnt from) or the directory of an mtrec serving SavedModel; null (the default) trains without a teacher.
    The teacher reads the raw examples through its own Transform graph, so it may declare other features.
    `student`: the student's model section: keys of the `model` section, and a `text_encoder` mapping of that
    section's keys, that replace the run's own, e.g. `{embedding_dim: 16, text_encoder: {mode: off}}`. The
    default drops the text encoder, the bulk of a served model; a mapping given in YAML replaces it. The student
    trains the run's tasks. Each task's loss is `hard_weight` times its label loss plus `soft_weight` times its
    soft loss (a binary task: the teacher's probability; regression: its prediction; retrieval: the teacher's
    in-batch softmax); `temperature` softens the binary and retrieval ones."""

    teacher: str | None = None
    student: dict[str, Any] = dataclasses.field(default_factory=_text_encoder_off)
    hard_weight: float = 1.0
    soft_weight: float = 1.0
    temperature: float = 2.0

    @property
    def enabled(self) -> bool:
        return self.teacher is not None


@dataclasses.dataclass
class Beam:
    """How the Beam components (ExampleGen, statistics, Transform, Evaluator) run. `runner`: "DirectRunner"
    (local), "PortableRunner", "FlinkRunner", "SparkRunner" or "DataflowRunner". `direct_running_mode` and
    `direct_num_workers` (0: one worker per core) apply to the DirectRunner. `pipeline_args`: further Beam flags,
    passed through verbatim (e.g. `--job_endpoint=localhost:8099`, `--project=...`)."""

    runner: str = "DirectRunner"
    direct_running_mode: str = "multi_processing"
    direct_num_workers: int = 0
    pipeline_args: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Retrieval:
    """The retrieval evaluation's settings (components/retrieval_evaluator): Recall@K and NDCG@K at each of
    `cutoffs`, and MRR, over the whole catalogue, of the `retrieve` signature on every positive eval event. The
    model is pushed only when, overall, its Recall@`gate_cutoff` reaches `min_lift` times that of the train split's
    most popular items, and drops by at most `max_recall_decrease` against the latest blessed model. A null
    `gate_cutoff` is the smallest cutoff: on a catalogue of a few hundred items the top 100 is a third of it, which
    the most popular items hit often too. `exclude_history`: whether retrieval leaves out the items of the user's
    history, as `mtrec recommend` does by default; an event on an item the user already had then counts as a
    miss."""

    cutoffs: list[int] = dataclasses.field(default_factory=lambda: [10, 100])
    gate_cutoff: int | None = None
    min_lift: float = 1.1
    max_recall_decrease: float = 0.05
    exclude_history: bool = True


@dataclasses.dataclass
class Evaluation:
    """Absolute thresholds, and the most a new model may lose against the latest blessed one: AUC for every
    binary task, RMSE for every regression task. Every task must also beat its trivial baseline: a binary task's
    AUC must exceed the random ranker's 0.5 by `min_auc_lift` (the stricter of that and `min_auc` applies), and
    its calibration (mean prediction / mean label, overall) lie in [`min_calibration`, `max_calibration`],
    widened by the chance allowance of the eval split's label count (components/evaluator); a regression task's
    RMSE on the eval split must not exceed that of predicting the train split's mean label (the stricter of that
    and `max_rmse` applies). `slices`: declared categorical features whose values the Evaluator also reports
    metrics for, beside the overall figures and the item popularity and user activity slices; null (the default)
    takes the declared categorical context features (e.g. the device). `per_task`: task name -> thresholds of its
    own that replace the ones above for that task, e.g. `{follow: {min_auc: 0.55}}` for a sparse signal; null
    (the default) takes the data source's default tasks' own (`default_task_thresholds`), none for tasks named in
    the configuration."""

    min_auc: float = 0.6
    max_rmse: float = 1.5
    max_auc_decrease: float = 0.02
    max_rmse_increase: float = 0.1
    min_auc_lift: float = 0.02
    min_calibration: float = 0.5
    max_calibration: float = 2.0
    slices: list[str] | None = None
    per_task: dict[str, dict[str, float]] | None = None
    retrieval: Retrieval = dataclasses.field(default_factory=Retrieval)

    def for_task(self, name: str) -> Evaluation:
        """The thresholds that apply to task `name`."""
        return dataclasses.replace(self, **(self.per_task or {}).get(name, {}))


# The thresholds `evaluation.per_task` may set, by the task type they apply to.
_TASK_THRESHOLDS = {"binary": ("min_auc", "max_auc_decrease", "min_auc_lift", "min_calibration", "max_calibration"),
                    "regression": ("max_rmse", "max_rmse_increase")}
_BINARY_GATES = ("min_auc_lift", "min_calibration", "max_calibration")  # checked together (_check_binary_gates)


# Features the drift and skew checks may watch besides the configured tasks' label columns: the example features
# ExampleGen writes, bar the slices.
DRIFT_FEATURES = tuple(name for name in features.RESERVED_COLUMNS if name not in features.SLICE_FEATURES)


# The default drift and skew thresholds: on the categories, and on the label columns of `watched_labels`.
DEFAULT_DRIFT = {features.CATEGORIES: 0.2}
DEFAULT_SKEW = {features.CATEGORIES: 0.25}
DEFAULT_LABEL_DRIFT = 0.1
DEFAULT_LABEL_SKEW = 0.15


@dataclasses.dataclass
class Validation:
    """Data checks that stop a run before training. `max_bad_fraction`: the largest share of the rows of
    events.csv, and of items.csv, that may be quarantined (the run stops above it). `drift`: feature -> the
    largest distance allowed between this run's training data and that of the last run whose data passed;
    `skew`: the same between this run's train and eval splits. The distance is the L-infinity distance of the
    value frequencies for categorical features (ids, binary labels, categories, text) and the approximate
    Jensen-Shannon divergence for numeric ones (e.g. rating). A mapping given in YAML replaces the default one;
    by default (null) the categories and the label columns of `watched_labels` are watched."""

    max_bad_fraction: float = 0.05
    drift: dict[str, float] | None = None
    skew: dict[str, float] | None = None


@dataclasses.dataclass
class RunConfig:
    """`output_dir` receives the converted data, the pipeline root, ML Metadata and the serving directory.
    `features`: the declared features (models.features.Feature); null takes the data source's
    (`default_features`)."""

    output_dir: str = "mtrec_runs"
    pipeline_name: str = "mtrec"
    data: Data = dataclasses.field(default_factory=Data)
    features: list[Feature] | None = None
    example_gen: ExampleGen = dataclasses.field(default_factory=ExampleGen)
    text_encoder: TextEncoder = dataclasses.field(default_factory=TextEncoder)
    model: Model = dataclasses.field(default_factory=Model)
    training: Training = dataclasses.field(default_factory=Training)
    distillation: Distillation = dataclasses.field(default_factory=Distillation)
    beam: Beam = dataclasses.field(default_factory=Beam)
    evaluation: Evaluation = dataclasses.field(default_factory=Evaluation)
    validation: Validation = dataclasses.field(default_factory=Validation)

    def __post_init__(self) -> None:
        """Fills in the defaults that depend on other sections: the data source's tasks and features, and the drift
        and skew thresholds on the tasks' label columns, and the default tasks' own thresholds."""
        if self.model.tasks is None:
            self.model.tasks = default_tasks(self.data.source)
            if self.evaluation.per_task is None:
                self.evaluation.per_task = default_task_thresholds(self.data.source)
        if self.evaluation.per_task is None:
            self.evaluation.per_task = {}
        if self.features is None:
            self.features = default_features(self.data.source)
        if self.evaluation.slices is None:
            self.evaluation.slices = [feature.name for feature in features.request_features(self.features)
                                      if feature.type == features.CATEGORICAL]
        watched = watched_labels(self.model.tasks)
        if self.validation.drift is None:
            self.validation.drift = {**DEFAULT_DRIFT, **dict.fromkeys(watched, DEFAULT_LABEL_DRIFT)}
        if self.validation.skew is None:
            self.validation.skew = {**DEFAULT_SKEW, **dict.fromkeys(watched, DEFAULT_LABEL_SKEW)}



def watched_labels(tasks: list[Task]) -> list[str]:
    """The label columns that drift and skew watch by default: binary ones, and numeric ones with a declared
    `label_range`. TFDV compares numeric values by histograms over each side's own min..max, so an unbounded,
    heavy-tailed label reads as skewed when only its maximum differs (KuaiRand's watch ratio: the same quantiles
    in train and eval, maxima 63 and 24, divergence 0.39); such a label can still be named in the thresholds."""
    ranged = {task.label for task in tasks if task.label_range is not None}
    return [column for column, kind in features.label_columns(tasks).items()
            if kind == features.BINARY_LABEL or column in ranged]


# What a day of the window without a file does (Data.missing_days).
MISSING_DAYS = ("refuse", "skip")
# Values that must be positive, and those that must lie strictly between 0 and 1.
_POSITIVE = {"window_days", "warm_start_epochs", "num_users", "num_items", "events_per_user", "history_length",
             "max_length", "embedding_dim",
             "feature_embedding_dim", "max_values", "buckets",
             "hidden_dim", "temperature", "max_categories", "epochs", "batch_size", "learning_rate",
             "max_rmse", "num_layers", "num_heads", "intermediate_dim", "num_experts", "num_task_experts",
             "num_levels", "expert_units", "sequence_layers", "sequence_heads", "tower_units", "min_calibration",
             "max_calibration", "cutoffs",
             "gate_cutoff"}
_NOT_NEGATIVE = {"cold_item_fraction", "new_item_fraction", "max_auc_decrease", "max_rmse_increase",
                 "min_auc_lift", "min_lift", "max_recall_decrease", "feature_cross_layers", "trainable_layers",
                 "weight", "direct_num_workers", "hash_buckets", "hard_weight", "soft_weight"}
_FRACTIONS = {"eval_fraction", "min_auc"}
_RATES = {"item_id_dropout"}  # from 0 (off) up to, not including, 1
# By field name, or by dotted path where a name means different things in different sections.
_CHOICES = {"data.source": ("synthetic", "csv", "movielens", "kuairand"), "missing_days": MISSING_DAYS,
            "split": ("time", "random"),
            "mode": ("frozen", "finetune", "off"), "pooling": ("mean", "cls"),
            "architecture": ("shared_bottom", "mmoe", "ple"), "user_tower": ("mean", "transformer"),
            "loss_balancing": ("fixed", "uncertainty"),
            "distribution": ("default", "mirrored", "multi_worker_mirrored", "tpu"),
            "mixed_precision": ("none", "mixed_float16", "mixed_bfloat16"), "optimizer": ("lazy_adam", "adam"),
            "runner": beam_options.RUNNERS, "direct_running_mode": beam_options.RUNNING_MODES}
# Task types, and the transforms a regression label may go through.
_TASK_TYPES = ("retrieval", "binary", "regression")
_LABEL_TRANSFORMS = ("none", "log1p")
_MODEL_TYPES = ("mtrec", "tfrs")


def _check_value(path: str, name: str, value: Any, problems: list[str]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{path}: must be a finite number, got {value}")
        return
    if isinstance(value, int | float) and not isinstance(value, bool):
        if name in _POSITIVE and value <= 0:
            problems.append(f"{path}: must be positive, got {value}")
        if name in _FRACTIONS and not 0 < value < 1:
            problems.append(f"{path}: must be between 0 and 1, got {value}")
        if name in _NOT_NEGATIVE and value < 0:
            problems.append(f"{path}: must not be negative, got {value}")
        if name in _RATES and not 0 <= value < 1:
            problems.append(f"{path}: must be at least 0 and below 1, got {value}")
    if isinstance(value, list) and name in _POSITIVE and not (value and all(v > 0 for v in value)):
        problems.append(f"{path}: must be a non-empty list of positive numbers, got {value}")
    choices = _CHOICES.get(path, _CHOICES.get(name))
    if choices is not None and value not in choices:
        problems.append(f"{path}: must be one of {list(choices)}, got {value!r}")


def _matches(value: Any, expected: Any) -> bool:
    if expected is Any:
        return True
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, option) for option in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if origin is list:
        (element,) = typing.get_args(expected)
        return isinstance(value, list) and all(_matches(v, element) for v in value)
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
    for unknown in sorted(set(values) - fields, key=str):
        problems.append(f"{path + '.' if path else ''}{unknown}: unknown key (known: {sorted(fields)})")
    kwargs = {}
    for name in fields & set(values):
        value, expected, where = values[name], hints[name], f"{path + '.' if path else ''}{name}"
        if dataclasses.is_dataclass(expected):
            kwargs[name] = _build(expected, value, where, problems)
            continue
        if value is None and _matches(None, expected):
            kwargs[name] = None
            continue
        listed = [option for option in (expected, *typing.get_args(expected)) if typing.get_origin(option) is list]
        element = typing.get_args(listed[0])[0] if listed else None
        if element is not None and dataclasses.is_dataclass(element):
            if not isinstance(value, list):
                problems.append(f"{where}: expected a list, got {value!r}")
                continue
            kwargs[name] = [_build(element, item, f"{where}[{i}]", problems) for i, item in enumerate(value)]
            continue
        if not _matches(value, expected):
            wanted = "true or false" if expected is bool else getattr(expected, "__name__", expected)
            problems.append(f"{where}: expected {wanted}, got {value!r}")
            continue
        if expected is float and isinstance(value, int) and abs(value) > 1e300:
            problems.append(f"{where}: {value} is too large")
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
    if config.data.source == "kuairand" and requires_text(config):
        problems.append("text_encoder.mode: KuaiRand has no item text; set it to off")
    _check_window(config.data, problems)
    _check_tasks(config.model, problems)
    _check_features(config, problems)
    _check_per_task(config, problems)
    _check_binary_gates("evaluation", config.evaluation, problems)
    _check_retrieval(config.evaluation.retrieval, problems)
    _check_training(config, problems)
    _check_distillation(config, problems)
    problems.extend(beam_options.problems(config.beam))
    _check_validation(config.validation, [*label_columns(config), *features.raw_columns(config.features)], problems)
    if config.text_encoder.max_length < 3:
        problems.append(f"text_encoder.max_length: must be at least 3 ([CLS], a token, [SEP]), "
                        f"got {config.text_encoder.max_length}")
    if config.text_encoder.backbone is not None:
        needed = {"num_layers", "num_heads", "hidden_dim", "intermediate_dim"}
        if set(config.text_encoder.backbone) != needed:
            problems.append(f"text_encoder.backbone: needs exactly the keys {sorted(needed)}, "
                            f"got {sorted(config.text_encoder.backbone)}")


def _check_window(data: Data, problems: list[str]) -> None:
    if data.window_days is not None and data.span is not None:
        problems.append("data.span: give either data.window_days (the latest days) or data.span (named days), "
                        "not both")
    if (data.partitioned or data.day is not None) and data.source != "csv":
        problems.append(f"data.source: daily partitions (window_days, span, day) are read from a csv source, got "
                        f"{data.source!r}")
    if data.day is not None and data.window_days is None:
        problems.append("data.day: the last day of a window; set data.window_days too")
    for where, day in [("data.day", data.day), *((f"data.span[{i}]", d) for i, d in enumerate(data.span or []))]:
        if day is not None and not window.is_day(day):
            problems.append(f"{where}: must be a date YYYY-MM-DD, got {day!r}")
    if data.span is not None and not data.span:
        problems.append("data.span: must name at least one day")


def _check_features(config: RunConfig, problems: list[str]) -> None:
    names = [feature.name for feature in config.features]
    if names and config.model.type == "tfrs":
        problems.append("features: the tfrs baseline reads ids and history only; declare no features")
    labels = label_columns(config)
    for i, feature in enumerate(config.features):
        where = f"features[{i}]"
        if not feature.name:
            problems.append(f"{where}.name: required")
        elif feature.name in features.RESERVED_COLUMNS or feature.name in labels:
            problems.append(f"{where}.name: {feature.name!r} is already a column mtrec reads (the fixed columns "
                            f"{list(features.RESERVED_COLUMNS)} and the tasks' labels {list(labels)})")
        for field, choices in (("source", features.FEATURE_SOURCES), ("type", features.FEATURE_TYPES),
                               ("normalization", features.NORMALIZATIONS), ("part", tuple(features.TIMESTAMP_PARTS))):
            if getattr(feature, field) not in choices:
                problems.append(f"{where}.{field}: must be one of {list(choices)}, got {getattr(feature, field)!r}")
        if feature.type == features.TIMESTAMP_PART and feature.source != features.EVENTS_SOURCE:
            problems.append(f"{where}.source: a timestamp part is a context feature (source events), "
                            f"got {feature.source!r}")
        if feature.type == features.MULTI_CATEGORICAL and not feature.separator:
            problems.append(f"{where}.separator: required for a multi_categorical feature")
        if feature.normalization == features.QUANTILES and feature.buckets < 2:
            problems.append(f"{where}.buckets: quantiles need at least 2 buckets, got {feature.buckets}")
        if not -14 <= feature.utc_offset_hours <= 14:
            problems.append(f"{where}.utc_offset_hours: must be between -14 and 14, got {feature.utc_offset_hours}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"features: duplicate feature name(s) {duplicates}")
    sliceable = [feature.name for feature in config.features
                 if feature.type in (features.CATEGORICAL, features.MULTI_CATEGORICAL)]
    for name in config.evaluation.slices:
        if name not in sliceable:
            problems.append(f"evaluation.slices: {name!r} is not a declared categorical feature (one of {sliceable})")


def _check_per_task(config: RunConfig, problems: list[str]) -> None:
    by_name = {task.name: task for task in config.model.tasks}
    for name, thresholds in config.evaluation.per_task.items():
        where = f"evaluation.per_task.{name}"
        task = by_name.get(name)
        if task is None or task.type not in _TASK_THRESHOLDS:
            problems.append(f"{where}: not a binary or regression task (tasks: {sorted(by_name)})")
            continue
        for key, value in thresholds.items():
            if key not in _TASK_THRESHOLDS[task.type]:
                problems.append(f"{where}.{key}: a {task.type} task's thresholds are "
                                f"{list(_TASK_THRESHOLDS[task.type])}")
            else:
                _check_value(f"{where}.{key}", key, value, problems)
        if task.type == "binary" and not thresholds.keys().isdisjoint(_BINARY_GATES):
            _check_binary_gates(where, config.evaluation.for_task(name), problems)


def _check_binary_gates(where: str, gates: Evaluation, problems: list[str]) -> None:
    """Gates no good model could pass: an AUC bound of 1 or more, a calibration band without 1.0."""
    if gates.min_auc_lift >= 0.5:
        problems.append(f"{where}.min_auc_lift: must be below 0.5 (an AUC cannot exceed 1), got {gates.min_auc_lift}")
    if not gates.min_calibration <= 1 <= gates.max_calibration:
        problems.append(f"{where}: the band [min_calibration, max_calibration] must hold a calibrated model's 1.0, "
                        f"got [{gates.min_calibration}, {gates.max_calibration}]")


def _check_retrieval(retrieval: Retrieval, problems: list[str]) -> None:
    if retrieval.gate_cutoff is not None and retrieval.gate_cutoff not in retrieval.cutoffs:
        problems.append(f"evaluation.retrieval.gate_cutoff: must be one of the cutoffs {retrieval.cutoffs}, "
                        f"got {retrieval.gate_cutoff}")


def _check_validation(validation: Validation, watched_columns: list[str], problems: list[str]) -> None:
    if not 0 <= validation.max_bad_fraction <= 1:
        problems.append(f"validation.max_bad_fraction: must be between 0 and 1, got {validation.max_bad_fraction}")
    watchable = [*DRIFT_FEATURES, *watched_columns]
    for check in ("drift", "skew"):
        for feature, threshold in getattr(validation, check).items():
            if feature not in watchable:
                problems.append(f"validation.{check}.{feature}: not a feature the check can watch "
                                f"(one of {watchable})")
            if not 0 < threshold <= 1:
                problems.append(f"validation.{check}.{feature}: must be in (0, 1], got {threshold}")


def _check_training(config: RunConfig, problems: list[str]) -> None:
    if config.model.type == "tfrs":
        plain = Training()
        for name in ("mixed_precision", "jit_compile", "optimizer"):
            if getattr(config.training, name) != getattr(plain, name):
                problems.append(f"training.{name}: the tfrs baseline trains without it, got "
                                f"{getattr(config.training, name)!r}")
        if config.training.warm_start:
            problems.append("training.warm_start: the tfrs baseline cannot warm start; set it to false")
        for name, plain in (("user_tower", "mean"), ("target_attention", False)):
            if getattr(config.model, name) != plain:
                problems.append(f"model.{name}: the tfrs baseline has no history sequence, got "
                                f"{getattr(config.model, name)!r}")
    text = config.text_encoder
    if config.training.jit_compile and text.mode == "finetune" and text.distinct_texts:
        problems.append("text_encoder.distinct_texts: XLA (training.jit_compile) cannot compile the batch's distinct "
                        "texts, whose number changes from batch to batch; set one of them to false")


def _student_sections(config: RunConfig, problems: list[str]) -> tuple[Model, TextEncoder]:
    """The student's model and text encoder sections: the run's, with `distillation.student`'s keys replacing
    theirs."""
    overrides = dict(config.distillation.student)
    text = overrides.pop("text_encoder", {})
    if "tasks" in overrides:
        problems.append("distillation.student.tasks: the student trains the run's tasks (model.tasks); "
                        "remove it here")
        overrides.pop("tasks")
    model = _build(Model, {**dataclasses.asdict(config.model), **overrides}, "distillation.student", problems)
    text_encoder = _build(TextEncoder, {**dataclasses.asdict(config.text_encoder), **(text or {})},
                          "distillation.student.text_encoder", problems)
    return model, text_encoder


def trained(config: RunConfig) -> RunConfig:
    """The configuration of the model this run trains: with distillation, the run's with the student's model and
    text encoder sections (`distillation.student`); otherwise `config` itself."""
    if not config.distillation.enabled:
        return config
    model, text_encoder = _student_sections(config, [])
    return dataclasses.replace(config, model=model, text_encoder=text_encoder)


def _check_distillation(config: RunConfig, problems: list[str]) -> None:
    distillation = config.distillation
    if not distillation.enabled:
        return
    teacher = distillation.teacher
    if teacher != features.LATEST_BLESSED_TEACHER and not is_uri(teacher) and not os.path.isfile(
            os.path.join(teacher, "saved_model.pb")):
        problems.append(f"distillation.teacher: {teacher!r} is neither {features.LATEST_BLESSED_TEACHER!r} nor the "
                        f"directory of a SavedModel (saved_model.pb), e.g. a version under a serving directory")
    student, _ = _student_sections(config, problems)
    if student.type != "mtrec":
        problems.append(f"distillation.student.type: the student is an mtrec model, got {student.type!r}")
    if distillation.hard_weight == 0 and distillation.soft_weight == 0:
        problems.append("distillation: hard_weight and soft_weight are both 0; the student would learn nothing")
    if config.training.warm_start:
        problems.append("training.warm_start: a distillation run resolves its teacher from the Trainer's base model, "
                        "which warm start also reads; set one of them off")


def _check_tasks(model: Model, problems: list[str]) -> None:
    if model.type not in _MODEL_TYPES:
        problems.append(f"model.type: must be one of {list(_MODEL_TYPES)}, got {model.type!r}")
    names = [task.name for task in model.tasks]
    by_name = {task.name: task for task in model.tasks}
    for i, task in enumerate(model.tasks):
        _check_task(f"model.tasks[{i}]", task, by_name, problems)
    ranges: dict[str, list[float]] = {}
    for task in model.tasks:
        if task.label and task.label_range is not None:
            if ranges.setdefault(task.label, task.label_range) != task.label_range:
                problems.append(f"model.tasks: the tasks on column {task.label!r} declare different label_range "
                                f"values ({ranges[task.label]} and {task.label_range})")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"model.tasks: duplicate task name(s) {duplicates}")
    if sum(task.type == "retrieval" for task in model.tasks) > 1:
        problems.append("model.tasks: at most one retrieval task")
    if not any(task.weight > 0 for task in model.tasks):
        problems.append("model.tasks: at least one task needs a positive weight")
    if model.type == "tfrs" and sorted(((t.type, t.label) for t in model.tasks), key=str) != [
            ("regression", "rating"), ("retrieval", None)]:
        problems.append("model.tasks: the tfrs model has exactly the tutorial's tasks, a retrieval task with label "
                        "null and a regression task on rating")


def _check_task(where: str, task: Task, by_name: dict[str, Task], problems: list[str]) -> None:
    if not task.name:
        problems.append(f"{where}.name: required")
    if task.type not in _TASK_TYPES:
        problems.append(f"{where}.type: must be one of {list(_TASK_TYPES)}, got {task.type!r}")
    if task.label is None and task.type != "retrieval":
        problems.append(f"{where}.label: a {task.type} task needs a label column of events.csv")
    if task.label in features.RESERVED_COLUMNS:
        problems.append(f"{where}.label: {task.label!r} is not a label column (the examples' own features "
                        f"{list(features.RESERVED_COLUMNS)} cannot be labels)")
    if task.label_transform not in _LABEL_TRANSFORMS:
        problems.append(f"{where}.label_transform: must be one of {list(_LABEL_TRANSFORMS)}, "
                        f"got {task.label_transform!r}")
    elif task.label_transform != "none" and task.type != "regression":
        problems.append(f"{where}.label_transform: only a regression label can be transformed, got a {task.type} task")
    if task.label_range is not None and (len(task.label_range) != 2 or task.label_range[0] > task.label_range[1]):
        problems.append(f"{where}.label_range: must be [min, max] with min <= max, got {task.label_range}")
    if task.given is not None:
        given = by_name.get(task.given)
        if given is None or given is task:
            problems.append(f"{where}.given: {task.given!r} is not another task (tasks: "
                            f"{[name for name in by_name if name != task.name]})")
        elif given.type != "binary":
            problems.append(f"{where}.given: the task it is conditioned on must be binary; {task.given!r} is "
                            f"{given.type}")
        elif given.given is not None:
            problems.append(f"{where}.given: {task.given!r} is itself conditioned (on {given.given!r}); "
                            f"conditions do not chain")
        if task.type == "retrieval":
            problems.append(f"{where}.given: a retrieval task cannot be conditioned")
    if task.entire_space and (task.given is None or task.type != "binary"):
        problems.append(f"{where}.entire_space: needs a binary task with `given`")


def label_columns(config: RunConfig) -> dict[str, str]:
    """Event column -> what its values must be (features.BINARY_LABEL, ...), for the configured tasks."""
    return features.label_columns(config.model.tasks)


def requires_text(config: RunConfig) -> bool:
    """Whether every item needs text (a title): only when the text tower reads it."""
    return config.text_encoder.mode != "off"


def label_ranges(tasks: list[Task]) -> dict[str, tuple[float, float]]:
    """Label column -> the [min, max] its tasks declare (`label_range`)."""
    return {task.label: tuple(task.label_range) for task in tasks if task.label and task.label_range is not None}


def from_dict(values: dict[str, Any]) -> RunConfig:
    problems: list[str] = []
    config = _build(RunConfig, values, "", problems)
    _check_run(config, problems)  # a value with a problem above was left at its default, so this is safe
    if problems:  # once each: the student's keys are checked as a mapping and again as a model section
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(dict.fromkeys(problems)))
    return config


class _Yaml12BoolLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's booleans: only true and false. YAML 1.1 also reads off, on, yes and no
    as booleans, so `mode: off` (as the docs write it) would arrive as False."""


_Yaml12BoolLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Yaml12BoolLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def with_data_day(config: RunConfig, day: str) -> RunConfig:
    """`config` with its window ending on `day` (`mtrec run --data-day`), checked as the YAML's own would be."""
    values = to_dict(config)
    values["data"]["day"] = day
    try:
        return from_dict(values)
    except ConfigError as error:
        raise ConfigError(f"--data-day: {error}") from None


def load(path: str | None) -> RunConfig:
    """The configuration of YAML file `path` over the defaults; the defaults alone when `path` is None."""
    if path is None:
        return RunConfig()
    try:
        with open(path, encoding="utf-8") as handle:
            values = yaml.load(handle, Loader=_Yaml12BoolLoader)  # noqa: S506 (a SafeLoader)
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: configuration file not found") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason})") from error
    # PyYAML's constructors raise more than YAMLError on bad scalars (`!!int x`, an impossible date, deep nesting).
    except (yaml.YAMLError, ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as error:
        raise ConfigError(f"{path}: not valid YAML ({type(error).__name__}: {error})") from error
    try:
        return from_dict({} if values is None else values)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def to_dict(config: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
