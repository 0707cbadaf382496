"""RetrievalEvaluator: blesses a model for push only when its `retrieve` signature, the one serving answers with,
finds the eval events' items in the whole catalogue better than the popularity baseline, and not much worse than
the latest blessed model.

For every positive eval event (its retrieval label > 0, or every event without a label), the model retrieves the
top `max(cutoffs)` items for the event's user and history, exactly as a serving request would; the event's item's
rank gives Recall@K, NDCG@K and MRR (metrics.py), overall and per item popularity (`cold`: no train events) and
user activity (`new`: no train events) slice. Beside the model: the train split's most popular items, and the
latest blessed model run over the same events. The figures and the verdict go to a RetrievalEvaluation artifact,
whose `blessed` property the Pusher reads.
"""

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the WordPiece ops of the model's graphs)
from tfx import v1 as tfx
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import path_utils

from components.artifacts import RetrievalEvaluation
from components.example_gen import executor as example_gen_executor
from components.retrieval_evaluator import metrics
from models import features

REPORT_FILE = "retrieval_metrics.json"
BLESSED_PROPERTY = "blessed"
_READ_BATCH = 4096
_RETRIEVE_BATCH = 256


def _records(examples: Any, split: str, spec: dict[str, Any]) -> Iterator[dict[str, list[list[Any]]]]:
    """Batches of a split of ExampleGen's output, each column a list of rows of values."""
    files = example_gen_executor.split_files(artifact_utils.get_split_uri([examples], split))
    for records in example_gen_executor.read_split(files, _READ_BATCH):
        yield {name: values.to_list() for name, values in tf.io.parse_example(records, spec).items()}


def _positive(batch: dict[str, list[list[Any]]], label: str | None) -> list[bool]:
    """The events that are retrieval targets: a positive label, or all of them without a label."""
    if label is None:
        return [True] * len(batch[features.ITEM_ID])
    return [bool(values) and values[0] > 0 for values in batch[label]]


def _spec(label: str | None, label_dtype: str, *columns: str) -> dict[str, Any]:
    spec = {column: tf.io.RaggedFeature(tf.string) for column in columns}
    if label is not None:
        spec[label] = tf.io.RaggedFeature(tf.int64 if label_dtype == "int" else tf.float32)
    return spec


def _first(rows: list[list[bytes]]) -> list[bytes]:
    return [row[0] if row else b"" for row in rows]


def train_popularity(examples: Any, label: str | None, label_dtype: str) -> list[bytes]:
    """The train split's items by number of positive events, most first."""
    positives: list[bytes] = []
    for batch in _records(examples, "train", _spec(label, label_dtype, features.ITEM_ID)):
        items = _first(batch[features.ITEM_ID])
        positives.extend(item for item, keep in zip(items, _positive(batch, label), strict=True) if keep)
    return metrics.popularity_order(positives)


def eval_events(examples: Any, label: str | None, label_dtype: str) -> dict[str, Any]:
    """The eval split's positive events: user, item, history and slice values."""
    columns = (features.USER_ID, features.ITEM_ID, features.HISTORY, *features.SLICE_FEATURES)
    events: dict[str, list[Any]] = {column: [] for column in columns}
    for batch in _records(examples, "eval", _spec(label, label_dtype, *columns)):
        keep = _positive(batch, label)
        for column in columns:
            rows = batch[column] if column == features.HISTORY else _first(batch[column])
            events[column].extend(row for row, wanted in zip(rows, keep, strict=True) if wanted)
    return events


def model_ranks(model_dir: str, events: dict[str, Any], depth: int, exclude_history: bool) -> np.ndarray:
    """Each event's item's rank in what the SavedModel's `retrieve` signature returns for the event's user."""
    retrieve = tf.saved_model.load(model_dir).signatures[features.RETRIEVE_SIGNATURE]
    targets = np.array(events[features.ITEM_ID], object)
    ranks = np.zeros(len(targets), np.int64)
    for start in range(0, len(targets), _RETRIEVE_BATCH):
        histories = events[features.HISTORY][start:start + _RETRIEVE_BATCH]
        width = max(1, *(len(history) for history in histories))
        size = len(histories)
        retrieved = retrieve(
            user_id=tf.constant(events[features.USER_ID][start:start + size]),
            history=tf.constant([list(history) + [b""] * (width - len(history)) for history in histories]),
            k=tf.fill([size], depth), exclude_history=tf.fill([size], exclude_history))[features.ITEM_IDS]
        ranks[start:start + size] = metrics.ranks_in(retrieved.numpy(), targets[start:start + size])
    return ranks


def evaluate(examples: Any, model_dir: str, baseline_dir: str | None, settings: dict[str, Any]) -> dict[str, Any]:
    """The report of the RetrievalEvaluation artifact: per-slice figures of the model, the popularity baseline and
    the latest blessed model, the gate's failures and the verdict."""
    started = time.monotonic()
    cutoffs = sorted(settings["cutoffs"])
    depth = cutoffs[-1]
    label, label_dtype, exclude = settings["label"], settings["label_dtype"], settings["exclude_history"]
    gate = metrics.Gate(settings["gate_cutoff"] or cutoffs[0], settings["min_lift"], settings["max_recall_decrease"])
    events = eval_events(examples, label, label_dtype)
    ranks = {metrics.MODEL: model_ranks(model_dir, events, depth, exclude),
             metrics.POPULARITY: metrics.popularity_ranks(
                 train_popularity(examples, label, label_dtype), events[features.ITEM_ID],
                 events[features.HISTORY], exclude, depth)}
    if baseline_dir:  # the model itself when a rerun's Trainer came from the cache
        ranks[metrics.BASELINE] = (ranks[metrics.MODEL] if baseline_dir == model_dir
                                   else model_ranks(baseline_dir, events, depth, exclude))
    masks = metrics.slice_masks({name: [value.decode() for value in events[name]] for name in features.SLICE_FEATURES})
    slices = metrics.by_slice(ranks, masks, cutoffs)
    failures = (gate.failures(slices[metrics.OVERALL]) if len(events[features.ITEM_ID])
                else ["the eval split has no retrieval positives to measure"])
    return {"blessed": not failures, "failures": failures, "cutoffs": cutoffs, "gate": vars(gate),
            "exclude_history": exclude, "slices": slices, "seconds": round(time.monotonic() - started, 2)}


def _serving_dir(model: Any) -> str:
    return path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))


@tfx.dsl.components.component
def RetrievalEvaluator(
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    evaluation: tfx.dsl.components.OutputArtifact[RetrievalEvaluation],
    settings: tfx.dsl.components.Parameter[str],
    code_version: tfx.dsl.components.Parameter[str],
    baseline_model: tfx.dsl.components.InputArtifact[standard_artifacts.Model] = None,
) -> None:
    """`settings`: JSON of the retrieval label column and its dtype, the cutoffs, the gate and exclude_history
    (see pipeline.evaluation.retrieval_settings). `code_version` keys the cache on mtrec's code."""
    del code_version
    report = evaluate(examples, _serving_dir(model), _serving_dir(baseline_model) if baseline_model else None,
                      json.loads(settings))
    with fileio.open(os.path.join(evaluation.uri, REPORT_FILE), "w") as handle:  # on gs:// under Kubeflow
        json.dump(report, handle, indent=2)
    evaluation.set_int_custom_property(BLESSED_PROPERTY, int(report["blessed"]))


def load_report(uri: str) -> dict[str, Any]:
    with fileio.open(os.path.join(uri, REPORT_FILE)) as handle:
        return json.load(handle)
