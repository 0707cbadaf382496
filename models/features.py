"""The one place that names every feature: raw columns, labels, transformed keys and model inputs.

Transform, Trainer, export, evaluation and serving import these names; no other module spells one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

# === Raw input columns (the CSV contract) ===
USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
CLICKED = "clicked"
RATING = "rating"
PURCHASED = "purchased"  # the built-in synthetic data's sparse post-click label
TITLE = "title"
DESCRIPTION = "description"
CATEGORIES = "categories"

# Every event has these; its other columns are labels when a task declares them (see `label_columns`).
EVENT_KEY_COLUMNS = (USER_ID, ITEM_ID, TIMESTAMP)
ITEM_COLUMNS = (ITEM_ID, TITLE, DESCRIPTION, CATEGORIES)
REQUIRED_ITEM_COLUMNS = (ITEM_ID, TITLE)  # with the text tower on; off, items.csv needs only ITEM_ID
CATEGORY_SEPARATOR = "|"

USERS_FILE = "users.csv"  # optional: a table keyed by user_id, read when a feature is declared on it

# === Added by ExampleGen ===
HISTORY = "history"  # the user's previous item ids, most recent first, strictly before the event's timestamp
# Evaluation slices, from counts over the train split; the model never reads them and serving never needs them.
ITEM_POPULARITY = "item_popularity"  # cold (no train events), rare, medium, popular
USER_ACTIVITY = "user_activity"  # new (no train events), light, regular, heavy
SLICE_FEATURES = (ITEM_POPULARITY, USER_ACTIVITY)
# Names a label column may not take: the event keys and what ExampleGen adds to each example.
RESERVED_COLUMNS = tuple(dict.fromkeys((*EVENT_KEY_COLUMNS, *ITEM_COLUMNS, HISTORY, *SLICE_FEATURES)))
# The raw features a serving request's tf.Example carries: the examples' features bar labels and slices.
SERVING_FEATURES = tuple(dict.fromkeys((*EVENT_KEY_COLUMNS, *ITEM_COLUMNS, HISTORY)))

# === The default tasks (the configuration may declare others, on any event column): name -> label column ===
RETRIEVAL_TASK = "retrieval"
CLICK_TASK = "click"
RATING_TASK = "rating"
PURCHASE_TASK = "purchase"
DEFAULT_EVENT_COLUMNS = (*EVENT_KEY_COLUMNS, CLICKED, RATING)  # what the built-in data and adapters write

# === Label columns: what a row's value must be ===
BINARY_LABEL = "binary"  # 0 or 1 (a binary task's label, or the condition of a `given` task)
NUMERIC_LABEL = "numeric"  # any finite number (a regression label)
NON_NEGATIVE_LABEL = "non_negative"  # a finite number >= 0 (retrieval weights, labels taken through log1p)

# === Transformed features (model inputs) ===
USER_INDEX = "user_index"
ITEM_INDEX = "item_index"
HISTORY_INDICES = "history_indices"  # 0 = padding, so the model can mask it
# A hash of the item id (>= 1; 0 = padding), for the item itself and each history position: the key under which the
# model finds an item's content (text, categories, declared features) in its catalogue table, so a history item
# that has no id embedding of its own (a new item, in the OOV row) is still read through its content.
ITEM_KEY = "item_key"
HISTORY_KEYS = "history_keys"
CATEGORY_INDICES = "category_indices"  # 0 = padding
TEXT_TOKEN_IDS = "text_token_ids"
TEXT_PADDING_MASK = "text_padding_mask"
USER_FEATURES = (USER_INDEX, HISTORY_INDICES)
ITEM_FEATURES = (ITEM_INDEX, CATEGORY_INDICES, TEXT_TOKEN_IDS, TEXT_PADDING_MASK)

# === Vocabularies written by Transform ===
USER_VOCABULARY = "user_id_vocabulary"
ITEM_VOCABULARY = "item_id_vocabulary"
CATEGORY_VOCABULARY = "category_vocabulary"

# === Serving signatures and their JSON-friendly inputs and outputs (see models/export.py) ===
SERVING_SIGNATURE = "serving_default"
RANK_SIGNATURE = "rank"
RETRIEVE_SIGNATURE = "retrieve"
USER_EMBEDDING_SIGNATURE = "user_embedding"
ITEM_EMBEDDING_SIGNATURE = "item_embedding"
EXAMPLES_INPUT = "examples"
ITEM_IDS = "item_ids"
K = "k"
EXCLUDE_HISTORY = "exclude_history"
SCORES = "scores"

# === Model outputs (also the TFMA output names) ===
USER_EMBEDDING = "user_embedding"
ITEM_EMBEDDING = "item_embedding"
CLICK_PROBABILITY = CLICK_TASK
RATING_PREDICTION = RATING_TASK


LOGIT_SUFFIX = "_logit"


TRANSFORMED_SUFFIX = "_transformed"
# Model outputs that training reads and serving leaves out.
TRAINING_OUTPUT_SUFFIXES = (LOGIT_SUFFIX, TRANSFORMED_SUFFIX)


def logit_name(task: str) -> str:
    """Model output key of a binary task's logit; its probability is under the task's own name. Not served."""
    return f"{task}{LOGIT_SUFFIX}"


def transformed_output_name(task: str) -> str:
    """Model output key of a transformed regression label's prediction (e.g. log1p); the task's own name holds it
    back on the label's scale. Not served."""
    return f"{task}{TRANSFORMED_SUFFIX}"


TEACHER_PREFIX = "teacher_"
# The `distillation.teacher` that names the pipeline's latest blessed model (found through ML Metadata), not a path.
LATEST_BLESSED_TEACHER = "latest_blessed"


def teacher_output(name: str) -> str:
    """Key, in a distilling Trainer's batches, of the teacher's output `name` (a task's prediction, user_embedding,
    item_embedding): the teacher's serving outputs travel beside the student's transformed features."""
    return f"{TEACHER_PREFIX}{name}"


def label_columns(tasks: Iterable[Any]) -> dict[str, str]:
    """Event column -> what its values must be, for the label columns of `tasks` (objects with `type`, `label`,
    `given` and `label_transform`; `given` names another task). A column that some task reads as binary is binary;
    one that weights retrieval or goes through log1p must not be negative; any other is numeric."""
    by_name = {task.name: task for task in tasks}
    kinds: dict[str, str] = {}
    strictness = (NUMERIC_LABEL, NON_NEGATIVE_LABEL, BINARY_LABEL)
    for task in by_name.values():
        if task.type == "binary":
            kind = BINARY_LABEL
        elif task.type == "retrieval" or task.label_transform == "log1p":
            kind = NON_NEGATIVE_LABEL
        else:
            kind = NUMERIC_LABEL
        wanted = [(task.label, kind)]
        if task.given in by_name and by_name[task.given].label:
            wanted.append((by_name[task.given].label, BINARY_LABEL))
        for column, kind in wanted:
            if column:
                kinds[column] = max(kinds.get(column, kind), kind, key=strictness.index)
    return kinds


def transformed_label(task: str) -> str:
    """Key of a task's label after Transform."""
    return f"{task}_label"


# === Declared features (the configuration's `features:`) ===
EVENTS_SOURCE, USERS_SOURCE, ITEMS_SOURCE = "events", "users", "items"
FEATURE_SOURCES = (EVENTS_SOURCE, USERS_SOURCE, ITEMS_SOURCE)
CATEGORICAL, MULTI_CATEGORICAL, NUMERIC, TIMESTAMP_PART = "categorical", "multi_categorical", "numeric", "timestamp"
FEATURE_TYPES = (CATEGORICAL, MULTI_CATEGORICAL, NUMERIC, TIMESTAMP_PART)
ZSCORE, LOG1P, QUANTILES = "zscore", "log1p", "quantiles"
NORMALIZATIONS = (ZSCORE, LOG1P, QUANTILES)
TIMESTAMP_PARTS = {"hour": 24, "weekday": 7}  # part -> how many values it takes
FEATURE_PREFIX = "feature_"  # transformed key of a declared feature: the prefix and its name


@dataclasses.dataclass(frozen=True)
class Feature:
    """A declared feature: a column of `source`'s file, or a part of the event's timestamp.

    `source`: "events" (a context feature, read by the ranking heads and given to `rank`), "users" (users.csv,
    keyed by user_id; the user tower) or "items" (items.csv; the item tower). `type`:
      - "categorical": a vocabulary with an OOV bucket, or `hash_buckets` > 0 buckets of a hash (for very many
        values, e.g. author ids); an empty value is missing;
      - "multi_categorical": values joined by `separator`, the first `max_values` read, each as a categorical;
      - "numeric": empty values and `missing_values` (sentinels such as -124) are missing; `normalization`
        "zscore", "log1p" (then z-score; values must not be negative) or "quantiles" (`buckets` TFT quantile
        buckets, embedded like a category);
      - "timestamp": the event timestamp's `part` ("hour" or "weekday", Monday = 0) at `utc_offset_hours`; no
        column is read.
    The data checks watch a declared column when `validation.drift` or `validation.skew` names it."""

    name: str = ""
    source: str = EVENTS_SOURCE
    type: str = CATEGORICAL
    hash_buckets: int = 0
    separator: str = "|"
    max_values: int = 8
    normalization: str = ZSCORE
    buckets: int = 10
    missing_values: list[float] = dataclasses.field(default_factory=list)
    part: str = "hour"
    utc_offset_hours: float = 0.0

    @classmethod
    def from_config(cls, values: dict[str, Any]) -> Feature:
        return cls(**values)

    @property
    def column(self) -> str | None:
        """The column read from the source file (None for a timestamp part)."""
        return None if self.type == TIMESTAMP_PART else self.name

    @property
    def input_name(self) -> str:
        """The model input Transform writes for it."""
        return f"{FEATURE_PREFIX}{self.name}"

    @property
    def vocabulary_name(self) -> str:
        return f"{FEATURE_PREFIX}{self.name}_vocabulary"

    @property
    def is_dense(self) -> bool:
        """Whether the model reads it as (value, present) pairs rather than embedded indices."""
        return self.type == NUMERIC and self.normalization != QUANTILES

    @property
    def width(self) -> int:
        """Indices per example of an embedded feature (index 0: missing or padding)."""
        return self.max_values if self.type == MULTI_CATEGORICAL else 1


def declared(feature_configs: Iterable[dict[str, Any]]) -> list[Feature]:
    """The Feature objects of custom_config's `features` list (dicts, as dataclasses.asdict wrote them)."""
    return [Feature.from_config(values) for values in feature_configs]


def of_source(declared_features: Iterable[Feature], source: str) -> list[Feature]:
    return [feature for feature in declared_features if feature.source == source]


def request_features(declared_features: Iterable[Feature]) -> list[Feature]:
    """The context features a `rank` request carries (timestamp parts come from its `timestamp` input)."""
    return [feature for feature in of_source(declared_features, EVENTS_SOURCE) if feature.type != TIMESTAMP_PART]


def raw_columns(declared_features: Iterable[Feature]) -> list[str]:
    """The raw example features the declared features add (timestamp parts read the event's own timestamp)."""
    return [feature.name for feature in declared_features if feature.column]
