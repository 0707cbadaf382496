"""Warm start: carrying a trained model's weights into a freshly built one of the next run.

Transform rebuilds its vocabularies every run (new users and items appear, indices move), so the id-keyed
embedding tables carry their rows by id string: a known id keeps its trained row, a new id keeps its fresh initial
row, and the padding and OOV rows carry. Every other trainable weight carries when its key (see `variable_keys`)
and shape match; whatever cannot carry is named, with its reason, in a CarryReport, and trains from scratch. The
optimizer's state does not carry. A dense weight carries whenever its shape matches, even when its inputs changed
meaning at equal width (one declared feature swapped for another of the same size): a start, not an answer; the
report's notes name such feature differences.

Only trainable weights are saved. The non-trainable ones (the frozen text cache, the item catalogue tables, the
logQ item frequencies, a frozen BERT's layers) are rebuilt from this run's data and preset. Label means only
initialise a regression head's bias, which is trainable: the trained bias carries.

The state lives in STATE_DIR inside the Model artifact's directory (beside TFX's Format-Serving), so a blessed
model found through ML Metadata brings what the next run needs. It is written to a temporary sibling and renamed;
its completion marker, written last, lists every file with its size, so a reader refuses a partial state (a killed
run, or an object store whose rename copies file by file).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from models import features, preprocessing

STATE_DIR = "warm_start"
WEIGHTS_FILE = "weights.npz"  # trainable variable key (see `variable_keys`) -> value
TABLES_FILE = "tables.json"  # id table name -> its variable key, row offset and vocabulary
STATE_FILE = "state.json"  # what the weights mean: model type, tasks, declared features
MARKER_FILE = "COMPLETE"  # written last: file name -> size in bytes
FORMAT = 1
# The fields of a declared feature that say what its embedding rows mean; a change in one means its table cannot
# carry (e.g. a vocabulary replaced by hash buckets).
_INDEX_FIELDS = ("type", "hash_buckets", "normalization", "buckets", "part", "utc_offset_hours")


class WarmStartError(RuntimeError):
    """Warm start is refused: the message says why."""


def artifact_dir(serving_model_path: str) -> str:
    """The Model artifact's directory of a serving model path: TFX's fn_args.serving_model_dir and
    fn_args.base_model are `<artifact uri>/Format-Serving` (tfx.utils.path_utils.serving_model_dir)."""
    return os.path.dirname(serving_model_path.rstrip("/"))


# === Naming variables, and which are id tables (the one place that knows the row layouts) ===

def _children(name: str, value: Any) -> Iterator[tuple[str, Any]]:
    """(path, layer) of the layers an attribute holds: itself, or those of its list or dict (by index or key)."""
    if isinstance(value, keras.layers.Layer):
        yield name, value
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _children(f"{name}/{index}", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _children(f"{name}/{key}", item)


def variable_keys(model: Any) -> dict[str, Any]:
    """Key -> trainable variable. The key is the chain of attribute names from the model down to the layer that
    owns the variable, then its name (e.g. "user_tower/user_embedding/embeddings"), as Keras' own weights files
    address layers. Not `variable.path`: a layer Keras names itself (keras_rs FeatureCross's Dense: "dense",
    "dense_1", ...) takes the next free name in the process, so the same model's paths differ between builds.
    A layer held by two attributes (the shared item table) is named by the first in sorted order, public first."""
    trainable = {id(variable) for variable in model.trainable_variables}
    keys: dict[str, Any] = {}
    seen: set[int] = set()

    def visit(layer: Any, prefix: str) -> None:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        for variable in [*layer._trainable_variables, *layer._non_trainable_variables]:  # the layer's own
            if id(variable) in trainable:
                key = f"{prefix}{variable.name}"
                keys[key if key not in keys else f"{key}#{len(keys)}"] = variable
        # Public attributes first; not Keras' and TensorFlow's own lists of every sublayer.
        for attribute, value in sorted(vars(layer).items(), key=lambda item: (item[0].startswith("_"), item[0])):
            if attribute != "_layers" and not attribute.startswith("_self_unconditional"):
                for path, child in _children(attribute, value):
                    visit(child, f"{prefix}{path}/")

    visit(model, "")
    reached = {id(variable) for variable in keys.values()}
    keys.update({variable.path: variable for variable in model.trainable_variables if id(variable) not in reached})
    return keys


@dataclasses.dataclass(frozen=True)
class IdTable:
    """An embedding table whose rows are a Transform vocabulary's ids: `offset` rows before the first id (the
    padding or missing row), the vocabulary, then preprocessing.OOV_BUCKETS rows."""

    name: str  # the embedding layer's name, e.g. "user_id_embedding"
    variable: Any
    vocabulary: str  # Transform's vocabulary name
    offset: int


def _feature_encoders(model: Any) -> Iterator[Any]:
    for encoder in (model.user_tower.user_features, model.item_tower.item_features, model.context_features):
        if encoder is not None:
            yield encoder


def id_tables(model: Any) -> list[IdTable]:
    """The id-keyed tables of a MultiTaskRecommender, from its layers and declared features (see
    models.preprocessing): user ids from row 0; item ids, categories and vocabulary features after a padding row.
    Hash buckets, timestamp parts and numeric buckets have fixed index spaces: they are not id tables."""
    user, item = model.user_tower, model.item_tower
    tables = [IdTable(user.user_embedding.name, user.user_embedding.embeddings, features.USER_VOCABULARY, 0),
              IdTable(item.item_embedding.name, item.item_embedding.embeddings, features.ITEM_VOCABULARY, 1)]
    if item.category_embedding is not None:
        tables.append(IdTable(item.category_embedding.name, item.category_embedding.embeddings,
                              features.CATEGORY_VOCABULARY, 1))
    for encoder in _feature_encoders(model):
        for feature in encoder.declared:
            if feature.type in (features.CATEGORICAL, features.MULTI_CATEGORICAL) and not feature.hash_buckets:
                layer = encoder.embeddings[feature.name]
                tables.append(IdTable(layer.name, layer.embeddings, feature.vocabulary_name, 1))
    return tables


def _feature_variables(model: Any) -> dict[int, features.Feature]:
    """id(variable) -> the declared feature whose embedding it is."""
    return {id(encoder.embeddings[feature.name].embeddings): feature
            for encoder in _feature_encoders(model) for feature in encoder.declared if not feature.is_dense}


def map_rows(old_vocabulary: list[str], new_vocabulary: list[str], offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(new_rows, old_rows): the new table's rows and the old table's rows they take, for a layout of `offset`
    leading rows, the vocabulary, then preprocessing.OOV_BUCKETS rows. Leading and OOV rows map to their
    counterparts; a vocabulary row maps when its id string is in both vocabularies. Sorted by new row."""
    old, new = np.asarray(old_vocabulary, dtype=str), np.asarray(new_vocabulary, dtype=str)
    _, old_index, new_index = np.intersect1d(old, new, assume_unique=True, return_indices=True)
    order = np.argsort(new_index, kind="stable")
    fixed = np.arange(offset, dtype=np.int64)
    oov = np.arange(preprocessing.OOV_BUCKETS, dtype=np.int64)
    new_rows = np.concatenate([fixed, offset + new_index[order], offset + len(new) + oov])
    old_rows = np.concatenate([fixed, offset + old_index[order], offset + len(old) + oov])
    return new_rows.astype(np.int64), old_rows.astype(np.int64)


# === Saving and reading the state ===

def _vocabulary(tft_output: Any, name: str) -> list[str]:
    # Ids are compared as strings; surrogateescape keeps a non-UTF-8 id distinct and round-trips through JSON.
    return [value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)
            for value in tft_output.vocabulary_by_name(name)]


def _meaning(config: dict[str, Any]) -> dict[str, Any]:
    """The config parts that define what the weights mean."""
    return {"format": FORMAT, "model_type": config["model"]["type"], "tasks": config["model"]["tasks"],
            "features": config["features"]}


def save_state(model: Any, tft_output: Any, config: dict[str, Any], model_dir: str) -> str:
    """Writes what a later run needs to warm start from this trained `model` into `model_dir`/STATE_DIR
    (`model_dir`: the Model artifact's directory); returns that path."""
    if not model.built:
        raise ValueError("save_state: the model has no variables yet (build or train it first)")
    keys = variable_keys(model)
    weights = {key: np.asarray(variable.numpy()) for key, variable in keys.items()}
    key_of = {id(variable): key for key, variable in keys.items()}
    tables = {table.name: {"key": key_of[id(table.variable)], "offset": table.offset,
                           "vocabulary_name": table.vocabulary, "vocabulary": _vocabulary(tft_output, table.vocabulary)}
              for table in id_tables(model)}
    buffer = io.BytesIO()
    np.savez(buffer, **weights)
    contents = {WEIGHTS_FILE: buffer.getvalue(), TABLES_FILE: json.dumps(tables).encode(),
                STATE_FILE: json.dumps(_meaning(config), indent=2).encode()}
    final = os.path.join(model_dir, STATE_DIR)
    temporary = os.path.join(model_dir, f".{STATE_DIR}.tmp-{uuid.uuid4().hex}")
    tf.io.gfile.makedirs(temporary)
    try:
        for name, data in contents.items():
            with tf.io.gfile.GFile(os.path.join(temporary, name), "wb") as handle:
                handle.write(data)
        with tf.io.gfile.GFile(os.path.join(temporary, MARKER_FILE), "w") as handle:
            json.dump({name: len(data) for name, data in contents.items()}, handle)
        if tf.io.gfile.exists(final):  # a retried Trainer writing into the same artifact
            tf.io.gfile.rmtree(final)
        tf.io.gfile.rename(temporary, final)
    finally:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.rmtree(temporary)
    return final


@dataclasses.dataclass
class _State:
    weights: dict[str, np.ndarray]
    tables: dict[str, dict[str, Any]]
    meaning: dict[str, Any]


def _read_state(base_dir: str) -> _State:
    directory = os.path.join(base_dir, STATE_DIR)
    marker = os.path.join(directory, MARKER_FILE)
    if not tf.io.gfile.exists(directory):
        raise WarmStartError(f"the base model has no warm start state: {directory} does not exist (was it trained "
                             "before warm start was added, or by the TFRS baseline?)")
    if not tf.io.gfile.exists(marker):
        raise WarmStartError(f"the base model's warm start state is incomplete: {marker} is missing (the run that "
                             "wrote it stopped midway)")
    with tf.io.gfile.GFile(marker) as handle:
        sizes = json.load(handle)
    contents = {}
    for name in (WEIGHTS_FILE, TABLES_FILE, STATE_FILE):
        path = os.path.join(directory, name)
        if name not in sizes or not tf.io.gfile.exists(path) or tf.io.gfile.stat(path).length != sizes[name]:
            raise WarmStartError(f"the base model's warm start state is incomplete: {path} is missing or not the "
                                 "size its completion marker records")
        with tf.io.gfile.GFile(path, "rb") as handle:
            contents[name] = handle.read()
    with np.load(io.BytesIO(contents[WEIGHTS_FILE])) as archive:
        weights = {key: archive[key] for key in archive.files}
    meaning = json.loads(contents[STATE_FILE])
    if meaning.get("format") != FORMAT:
        raise WarmStartError(f"the base model's warm start state has format {meaning.get('format')}, this code "
                             f"reads {FORMAT}")
    return _State(weights, json.loads(contents[TABLES_FILE]), meaning)


# === Carrying ===

@dataclasses.dataclass
class TableCarry:
    """Rows of one id table: ids in both vocabularies (trained rows kept), new ids (fresh rows), dropped ids."""

    known: int
    new: int
    dropped: int


@dataclasses.dataclass
class CarryReport:
    """What warm start carried from the base model, and what trains from scratch and why."""

    base_dir: str
    tables: dict[str, TableCarry] = dataclasses.field(default_factory=dict)  # id table name -> its rows
    dense: list[str] = dataclasses.field(default_factory=list)  # variable keys carried as they are
    not_carried: dict[str, str] = dataclasses.field(default_factory=dict)  # variable key -> reason
    notes: list[str] = dataclasses.field(default_factory=list)  # differences of tasks and declared features

    def lines(self) -> list[str]:
        lines = [f"Warm start from {self.base_dir}: {len(self.tables)} id tables and {len(self.dense)} other "
                 f"weights carried, {len(self.not_carried)} not carried"]
        lines += [f"  table {name}: {rows.known} known ids keep their rows, {rows.new} new ids start fresh, "
                  f"{rows.dropped} ids dropped" for name, rows in self.tables.items()]
        lines += [f"  not carried {key}: {reason}" for key, reason in self.not_carried.items()]
        lines += [f"  note: {note}" for note in self.notes]
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


def _differences(base: dict[str, Any], config: dict[str, Any]) -> tuple[list[str], dict[str, list[str]]]:
    """(notes on task and feature set differences, feature name -> index-defining fields that changed)."""
    notes = []
    for kind, old, new in (("tasks", base["tasks"], config["model"]["tasks"]),
                           ("declared features", base["features"], config["features"])):
        old_names, new_names = [item["name"] for item in old], [item["name"] for item in new]
        added = [name for name in new_names if name not in old_names]
        removed = [name for name in old_names if name not in new_names]
        if added or removed:
            notes.append(f"{kind} differ from the base model's: added {added}, removed {removed}")
    old_features = {item["name"]: item for item in base["features"]}
    changed = {}
    for item in config["features"]:
        fields = [field for field in _INDEX_FIELDS
                  if item["name"] in old_features and old_features[item["name"]].get(field) != item.get(field)]
        if fields:
            changed[item["name"]] = fields
            notes.append(f"declared feature {item['name']!r} changed {fields}: its embedding does not carry")
    return notes, changed


def _carry_table(table: IdTable, old: np.ndarray, old_vocabulary: list[str],
                 new_vocabulary: list[str]) -> TableCarry:
    """Assigns the rows of the ids both vocabularies know, and the padding and OOV rows."""
    new_rows, old_rows = map_rows(old_vocabulary, new_vocabulary, table.offset)
    value = np.array(table.variable.numpy())
    value[new_rows] = old[old_rows]
    table.variable.assign(value)
    known = len(new_rows) - table.offset - preprocessing.OOV_BUCKETS
    return TableCarry(known, len(new_vocabulary) - known, len(old_vocabulary) - known)


def carry(model: Any, tft_output: Any, config: dict[str, Any], base_dir: str) -> CarryReport:
    """Assigns the weights of the base model saved in `base_dir` (its Model artifact's directory) into the built
    `model` of `config` (the Trainer's custom_config), whose vocabularies are `tft_output`'s. Raises WarmStartError
    when the state is missing or incomplete, or the base is another model type."""
    if config["model"]["type"] != "mtrec":
        raise WarmStartError(f"model type {config['model']['type']!r} does not support warm start")
    if not model.built:
        raise ValueError("carry: build the model first (call it on one batch), so that its variables exist")
    state = _read_state(base_dir)
    if state.meaning["model_type"] != config["model"]["type"]:
        raise WarmStartError(f"the base model is a {state.meaning['model_type']!r} model, this run trains a "
                             f"{config['model']['type']!r} one")
    report = CarryReport(base_dir)
    report.notes, changed = _differences(state.meaning, config)
    keys = variable_keys(model)
    key_of = {id(variable): key for key, variable in keys.items()}
    by_feature = _feature_variables(model)
    tables = {key_of[id(table.variable)]: table for table in id_tables(model)}
    base_tables = {base["key"] for base in state.tables.values()}
    for key, variable in keys.items():
        feature = by_feature.get(id(variable))
        table = tables.get(key)
        base = state.tables.get(table.name) if table is not None else None
        old = state.weights.get(base["key"] if base is not None else key)
        shape = tuple(variable.shape)
        if feature is not None and feature.name in changed:
            report.not_carried[key] = f"declared feature {feature.name!r} changed {changed[feature.name]}"
        elif old is None:
            report.not_carried[key] = "not in the base model"
        elif table is not None and base is None:
            report.not_carried[key] = "a fixed index space in the base model, now keyed by a vocabulary"
        elif table is None and key in base_tables:
            report.not_carried[key] = "an id table in the base model, now a fixed index space"
        elif (old.shape[1:] != shape[1:]) if table is not None else (old.shape != shape):  # tables: rows may differ
            report.not_carried[key] = f"shape mismatch: base {list(old.shape)}, new {list(shape)}"
        elif table is None:
            variable.assign(old)
            report.dense.append(key)
        elif base["offset"] != table.offset:
            report.not_carried[key] = f"row layout changed: {base['offset']} leading rows, now {table.offset}"
        else:
            report.tables[table.name] = _carry_table(table, old, base["vocabulary"],
                                                     _vocabulary(tft_output, table.vocabulary))
    used = set(keys) | {state.tables[table.name]["key"] for table in tables.values() if table.name in state.tables}
    report.not_carried.update({key: "not in the new model" for key in state.weights if key not in used})
    return report
