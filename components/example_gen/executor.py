"""Beam executor of EventsExampleGen: CSV rows -> joined, history-enriched, split tf.Examples.

Rows that break the contract, name an item the catalogue lacks (or quarantined), or repeat an earlier event are
not dropped: they are written with their reason to `quarantine/quarantine.jsonl` inside the Examples artifact,
and their counts become custom properties of the artifact, which the data gate checks against the configured
maximum share.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen import write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.util import examples_utils
from tfx.types import artifact_utils, standard_component_specs

from components.example_gen import input_contract, window
from models import features

SPLIT_MODES = ("time", "random")
TRAIN, EVAL = "train", "eval"
HISTORY_LENGTH_KEY = "history_length"
SPLIT_KEY = "split"
EVAL_FRACTION_KEY = "eval_fraction"
SEED_KEY = "seed"
# The label columns of events.csv and what their values must be, as JSON: {column: features.BINARY_LABEL, ...}.
LABEL_COLUMNS_KEY = "label_columns"
# 1 when the text tower is on: an item without a title is then quarantined; 0: items may have no text.
REQUIRE_TEXT_KEY = "require_text"
# The declared features, as JSON: a list of dataclasses.asdict(features.Feature).
FEATURES_KEY = "features"
# The window of daily partitions to read, as JSON (window.WindowConfig), or "" for one events.csv; and the window
# the driver resolved from it (window.Window as JSON), which the executor resolves itself where no driver runs.
WINDOW_CONFIG_KEY = "window_config"
WINDOW_KEY = "window"
# The window's last day (YYYY-MM-DD), "" for the latest day there is; a property of its own, so that an orchestrator
# can set it per run (a Kubeflow runtime parameter a recurring run fills with its scheduled date).
DATA_DAY_KEY = "data_day"
# The resolved window (days read, days skipped), as a custom property of the Examples artifact.
WINDOW_PROPERTY = "mtrec_window"
# A fingerprint of mtrec's own code: part of the execution properties, so that ML Metadata's cache never
# hands examples written by older code to newer code.
CODE_VERSION_KEY = "code_version"
# Where the quarantined rows and the row counts go, inside the Examples artifact.
QUARANTINE_DIR = "quarantine"
QUARANTINE_FILE = "quarantine.jsonl"
ROW_COUNTS_FILE = "row_counts.json"
# Custom properties of the Examples artifact: {file: {"rows": n, "quarantined": n, "by_column": {...}}} as JSON.
ROW_COUNTS_PROPERTY = "mtrec_row_counts"
# How far past the run's start an event's timestamp may lie (clock skew between the log writer and this host).
FUTURE_TOLERANCE_SECONDS = 24 * 3600
# Nothing that grows with the log is held in memory at once: the events are grouped by user, and the examples of a
# split shuffled, through bucket files, each bucket then read on its own. A bucket holds about BUCKET_BYTES of the
# events file (the examples of a bucket take ~15x that), in MIN_BUCKETS files at least. The files live in
# BUCKET_DIR inside the Examples artifact until the splits are written.
MIN_BUCKETS = 32
BUCKET_BYTES = 4 * 1024 * 1024
BUCKET_DIR = "buckets"
# Train-split event counts -> slice names: (lowest count of the bucket, name), ascending.
POPULARITY_BUCKETS = ((0, "cold"), (1, "rare"), (10, "medium"), (50, "popular"))
ACTIVITY_BUCKETS = ((0, "new"), (1, "light"), (10, "regular"), (50, "heavy"))


def _bytes(*values: str) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))


def _values(feature: features.Feature, values: input_contract.Values) -> tf.train.Feature:
    """A declared feature's values (none when missing): numbers as floats, categories as bytes."""
    if feature.type == features.NUMERIC:
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return _bytes(*values)


def _label(value: float) -> tf.train.Feature:
    """A binary label (parsed as int) as an int64 feature, any other as a float feature."""
    if isinstance(value, int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))


def to_example(event: input_contract.Event, item: input_contract.Item, history: list[str],
               user: input_contract.User | None = None, declared: Iterable[features.Feature] = ()
               ) -> tf.train.Example:
    """The example of an event: its keys, labels, text and history, and the `declared` features' values from the
    event (context), its item and its user (a user users.csv lacks has none: missing values)."""
    sources = {features.EVENTS_SOURCE: event.context, features.ITEMS_SOURCE: item.attributes,
               features.USERS_SOURCE: user.attributes if user else {}}
    return tf.train.Example(features=tf.train.Features(feature={
        **{feature.name: _values(feature, sources[feature.source].get(feature.name, ()))
           for feature in declared if feature.column},
        features.USER_ID: _bytes(event.user_id),
        features.ITEM_ID: _bytes(event.item_id),
        features.TIMESTAMP: tf.train.Feature(int64_list=tf.train.Int64List(value=[event.timestamp])),
        **{column: _label(value) for column, value in event.labels.items()},
        features.TITLE: _bytes(item.title),
        features.DESCRIPTION: _bytes(item.description),
        features.CATEGORIES: _bytes(*item.categories),
        features.HISTORY: _bytes(*history),
    }))


def _random_is_eval(event: input_contract.Event, eval_fraction: float, seed: int) -> bool:
    key = f"{seed}\x00{event.user_id}\x00{event.item_id}\x00{event.timestamp}".encode()
    draw = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
    return draw < eval_fraction


def user_timeline(
    events: Iterable[tuple[int, input_contract.Event, Any]],
    history_length: int,
    split: str,
    eval_fraction: float,
    seed: int,
) -> Iterator[tuple[str, input_contract.Event, Any, list[str]] | input_contract.BadRow]:
    """Yields (split, event, payload, history) for each of one user's (line, event, payload) in time order, and a
    BadRow for each repeat of an earlier line's event (same user, item and timestamp).

    The history of an event holds the item ids of the user's events with a strictly earlier timestamp, most
    recent first, so no event sees its own item or anything at or after its own time. With the "time" split,
    the latest `eval_fraction` of the user's events (at least one, if the user has two or more) go to eval.
    """
    ordered = []
    first_line: dict[tuple[str, int], int] = {}
    for line, event, payload in sorted(events, key=lambda entry: (entry[1].timestamp, entry[1].item_id, entry[0])):
        key = (event.item_id, event.timestamp)
        if key in first_line:
            yield input_contract.BadRow(
                input_contract.EVENTS_FILE, line, None,
                f"duplicate of line {first_line[key]} (same user, item and timestamp)", _event_row(event))
            continue
        first_line[key] = line
        ordered.append((event, payload))
    num_eval = 0
    if split == "time" and len(ordered) >= 2:
        num_eval = min(len(ordered) - 1, max(1, round(len(ordered) * eval_fraction)))
    earlier = 0  # ordered[:earlier] are the events strictly before the current timestamp
    for index, (event, payload) in enumerate(ordered):
        while ordered[earlier][0].timestamp < event.timestamp:
            earlier += 1
        history = [e.item_id for e, _ in ordered[max(0, earlier - history_length):earlier]][::-1]
        if split == "time":
            is_eval = index >= len(ordered) - num_eval
        else:
            is_eval = _random_is_eval(event, eval_fraction, seed)
        yield (EVAL if is_eval else TRAIN), event, payload, history


def user_examples(
    events: Iterable[tuple[int, input_contract.Event, input_contract.Item]],
    history_length: int,
    split: str,
    eval_fraction: float,
    seed: int,
    user: input_contract.User | None = None,
    declared: Iterable[features.Feature] = (),
) -> Iterator[tuple[str, tf.train.Example] | input_contract.BadRow]:
    """Yields (split, example) for each of one user's (line, event, item), and a BadRow for each repeat of an
    earlier line's event (see `user_timeline`). `user`: the user's row of users.csv, if any; `declared`: the
    declared features the examples carry."""
    for entry in user_timeline(events, history_length, split, eval_fraction, seed):
        yield entry if _is_bad(entry) else (entry[0], to_example(*entry[1:], user, declared))


def _event_row(event: input_contract.Event) -> dict[str, str]:
    """The event's fields as strings, as the CSV row had them."""
    return {name: str(value) for name, value in (
        (features.USER_ID, event.user_id), (features.ITEM_ID, event.item_id), (features.TIMESTAMP, event.timestamp),
        *event.labels.items())}


def bucket(count: int, buckets: tuple[tuple[int, str], ...]) -> str:
    """Name of the last bucket whose lower bound `count` reaches."""
    return [name for lowest, name in buckets if count >= lowest][-1]


def add_slices(pair: tuple[str, tf.train.Example], item_counts: dict[str, int], user_counts: dict[str, int]
               ) -> tuple[str, tf.train.Example]:
    """Adds the evaluation slice features from the train split's counts of the example's item and user."""
    split, example = pair
    feature = example.features.feature
    item = feature[features.ITEM_ID].bytes_list.value[0].decode()
    user = feature[features.USER_ID].bytes_list.value[0].decode()
    feature[features.ITEM_POPULARITY].CopyFrom(_bytes(bucket(item_counts.get(item, 0), POPULARITY_BUCKETS)))
    feature[features.USER_ACTIVITY].CopyFrom(_bytes(bucket(user_counts.get(user, 0), ACTIVITY_BUCKETS)))
    return split, example


def _known_item(entry: tuple[int, input_contract.Event], items: dict[str, Any]
                ) -> Iterator[tuple[str, tuple] | input_contract.BadRow]:
    """(user, (line, *event fields)) for an event whose item the catalogue has; a BadRow saying why otherwise.

    The event travels as a tuple of plain values, not with its item's text: the text joins the event only when
    its example is built."""
    line, event = entry
    item = items.get(event.item_id)
    if isinstance(item, input_contract.Item):
        yield event.user_id, (line, *dataclasses.astuple(event))
        return
    reason = (f"item {event.item_id!r} is quarantined ({item.describe()})" if item
              else f"item {event.item_id!r} is not in the item catalogue")
    yield input_contract.BadRow(input_contract.EVENTS_FILE, line, features.ITEM_ID, reason, _event_row(event))


def _preferred_entry(entries: Iterable[input_contract.Item | input_contract.BadRow]
                     ) -> input_contract.Item | input_contract.BadRow:
    """An item id's readable item if it has one, else one of its quarantined rows."""
    entries = list(entries)
    return next((entry for entry in entries if isinstance(entry, input_contract.Item)), entries[0])


def bucket_count(events_paths: list[str]) -> int:
    """How many buckets the events files' log goes through (see BUCKET_BYTES); a missing file counts nothing
    (the reading of it reports it)."""
    size = sum(tf.io.gfile.stat(path).length for path in events_paths if tf.io.gfile.exists(path))
    return max(MIN_BUCKETS, -(-size // BUCKET_BYTES))


def _screen_day(path_and_offset: tuple[str, int], **kwargs: Any) -> Iterator[tuple[int, input_contract.Event]
                                                                               | input_contract.BadRow]:
    """screen_events of one file of the events, its lines counted from `offset`: the files of a window read as
    one table (window.LineMap maps the lines back when the quarantine is written)."""
    path, offset = path_and_offset
    for entry in input_contract.screen_events(path, **kwargs):
        if _is_bad(entry):
            yield dataclasses.replace(entry, file=input_contract.EVENTS_FILE, line=entry.line + offset)
        else:
            yield entry[0] + offset, entry[1]


def _user_bucket(keyed: tuple[str, tuple], buckets: int) -> tuple[int, bytes]:
    """(bucket of the user, the event's tuple as JSON), for _ToBucketFiles."""
    user, event = keyed
    return zlib.crc32(user.encode("utf-8")) % buckets, json.dumps(event).encode("utf-8")


def _bucket_users(bucket_files: tuple[int, Iterable[str]]) -> Iterator[list[tuple[int, input_contract.Event]]]:
    """Each user's (line, event) pairs, for the users of one bucket of events (see _user_bucket)."""
    users: dict[str, list[tuple[int, input_contract.Event]]] = {}
    for record in _read_records(bucket_files[1]):
        line, *fields = json.loads(record)
        event = input_contract.Event(*fields)
        users.setdefault(event.user_id, []).append((line, event))
    yield from users.values()


def _catalogue_entries(path: str, require_text: bool, declared: list[features.Feature]
                       ) -> Iterator[tuple[str, input_contract.Item | input_contract.BadRow]]:
    """(item id, item) for readable items; (item id, BadRow) for quarantined ones, so their events can say why."""
    items, bad = input_contract.screen_items(path, require_text, declared)
    yield from items.items()
    for row in bad:
        yield row.row.get(features.ITEM_ID, "").strip(), row


def _user_entries(path: str, declared: list[features.Feature]
                  ) -> Iterator[tuple[str, input_contract.User] | input_contract.BadRow]:
    """(user id, user) for readable rows of users.csv and a BadRow for each quarantined one. An event's user
    without a readable row gets no user features (missing values), so no event is lost for it."""
    users, bad = input_contract.screen_users(path, declared)
    yield from users.items()
    yield from bad


def _is_bad(entry: Any) -> bool:
    return isinstance(entry, input_contract.BadRow)


def _split_bad(pcoll: beam.PCollection, label: str) -> tuple[beam.PCollection, beam.PCollection]:
    """(good elements, BadRows) of a collection that mixes both."""
    good, bad = pcoll | f"Split{label}" >> beam.Partition(lambda entry, _: int(_is_bad(entry)), 2)
    return good, bad


def row_counts(event_rows: int, item_rows: int, bad: Iterable[input_contract.BadRow], user_rows: int | None = None
               ) -> dict[str, dict[str, Any]]:
    """{file: {"rows": read, "quarantined": n, "by_column": {column or "row": n}}} for the input files (users.csv
    when it was read: `user_rows` not None)."""
    files = {input_contract.EVENTS_FILE: event_rows, input_contract.ITEMS_FILE: item_rows}
    if user_rows is not None:
        files[input_contract.USERS_FILE] = user_rows
    counts = {name: {"rows": rows, "quarantined": 0, "by_column": {}} for name, rows in files.items()}
    for row in bad:
        entry = counts[row.file]
        entry["quarantined"] += 1
        column = row.column or "row"
        entry["by_column"][column] = entry["by_column"].get(column, 0) + 1
    return counts


def _in_day_file(row: input_contract.BadRow, lines: window.LineMap | None) -> input_contract.BadRow:
    """A quarantined event of a window, named by its day file and line there."""
    if lines is None or row.file != input_contract.EVENTS_FILE:
        return row
    name, line = lines.locate(row.line)
    return dataclasses.replace(row, file=name, line=line)


@beam.ptransform_fn
def _WriteQuarantine(bad: beam.PCollection, event_rows: beam.PCollection, item_rows: beam.PCollection,
                     user_rows: beam.PCollection | None, quarantine_dir: str,
                     lines: window.LineMap | None = None) -> None:
    """Writes the BadRows (one JSON object a line, sorted by file and line; a window's events by their day file)
    and the row counts (`user_rows`: None when users.csv is not read; a window's events count as events.csv)."""
    rows = bad | "Collect" >> beam.combiners.ToList()
    _ = (rows
         | "SortRows" >> beam.FlatMap(lambda found: [row.to_json() for row in sorted(
             (_in_day_file(row, lines) for row in found), key=lambda row: (row.file, row.line, row.reason))])
         | "WriteRows" >> beam.io.WriteToText(os.path.join(quarantine_dir, QUARANTINE_FILE), num_shards=1,
                                              shard_name_template=""))
    _ = (rows
         | "Count" >> beam.Map(lambda found, events, items, users: json.dumps(row_counts(events, items, found, users)),
                               events=beam.pvalue.AsSingleton(event_rows), items=beam.pvalue.AsSingleton(item_rows),
                               users=beam.pvalue.AsSingleton(user_rows) if user_rows is not None else None)
         | "WriteCounts" >> beam.io.WriteToText(os.path.join(quarantine_dir, ROW_COUNTS_FILE), num_shards=1,
                                                shard_name_template=""))


def _bucket_timelines(bucket_files: tuple[int, Iterable[str]], history_length: int, split: str,
                      eval_fraction: float, seed: int
                      ) -> Iterator[tuple[str, input_contract.Event, None, list[str]] | input_contract.BadRow]:
    """user_timeline of each user of one bucket of events."""
    for events in _bucket_users(bucket_files):
        yield from user_timeline([(line, event, None) for line, event in events], history_length, split,
                                 eval_fraction, seed)


def _bucket_examples(bucket_files: tuple[int, Iterable[str]], history_length: int, split: str, eval_fraction: float,
                     seed: int, items: dict[str, Any], item_counts: dict[str, int],
                     user_counts: dict[str, int], users: dict[str, input_contract.User],
                     declared: list[features.Feature]) -> Iterator[tuple[str, tf.train.Example]]:
    """(split, example) of each event of one bucket's users, with the item text, the declared features and the
    slices; the Timelines step has already quarantined the repeats that this skips."""
    for events in _bucket_users(bucket_files):
        attached = [(line, event, items[event.item_id]) for line, event in events]
        user = users.get(events[0][1].user_id)
        for entry in user_examples(attached, history_length, split, eval_fraction, seed, user, declared):
            if not _is_bad(entry):
                yield add_slices(entry, item_counts, user_counts)


@beam.ptransform_fn
def EventsToSplitExamples(
    pipeline: beam.Pipeline, input_dir: str, history_length: int, split: str, eval_fraction: float, seed: int,
    quarantine_dir: str, bucket_dir: str, max_timestamp: int | None = None,
    labels: dict[str, str] = input_contract.DEFAULT_LABELS, require_text: bool = True,
    declared: list[features.Feature] = (), events_files: list[str] | None = None,
) -> dict[str, beam.PCollection]:
    """Reads the CSV files of `input_dir`; returns {'train': examples, 'eval': examples} and writes the
    quarantined rows and row counts to `quarantine_dir`. `labels`: the label columns of the events and what their
    values must be; `require_text`: whether an item without a title is quarantined; `declared`: the declared
    features (users.csv is read when one is a user feature). Events after `max_timestamp` are quarantined.
    `events_files`: the day files of a window, read as one events table (default: `input_dir`/events.csv).

    The events are grouped by user through bucket files in `bucket_dir`, which the caller removes once the
    pipeline has run."""
    events_files = events_files or [os.path.join(input_dir, input_contract.EVENTS_FILE)]
    lines = window.LineMap.of(events_files) if len(events_files) > 1 else None
    catalogue = (
        pipeline
        | "ItemsPath" >> beam.Create([os.path.join(input_dir, input_contract.ITEMS_FILE)])
        | "ReadItems" >> beam.FlatMap(_catalogue_entries, require_text, declared)
    )
    screened = (
        pipeline
        | "EventsPaths" >> beam.Create(list(zip(events_files, lines.offsets if lines else [0], strict=True)))
        | "ReadEvents" >> beam.FlatMap(_screen_day, labels=labels, max_timestamp=max_timestamp, declared=declared)
    )
    reads_users = bool(features.of_source(declared, features.USERS_SOURCE))
    user_rows = (
        pipeline
        | "UsersPath" >> beam.Create([os.path.join(input_dir, input_contract.USERS_FILE)] if reads_users else [])
        | "ReadUsers" >> beam.FlatMap(_user_entries, declared)
    )
    users, bad_users = _split_bad(user_rows, "Users")
    events, bad_events = _split_bad(screened, "Events")
    # The catalogue is a side input (its size is the catalogue's, not the log's). A runner's GroupByKey may hold
    # its whole input in memory (the DirectRunner does), so the events are grouped by user through bucket files:
    # only the files' names go through a GroupByKey, and each bucket is read and grouped on its own. A first pass
    # over the buckets gives the train counts that the slices need; the examples are built in a second pass, so
    # none of them waits in memory for the counts.
    items = beam.pvalue.AsDict(catalogue | "OnePerItem" >> beam.CombinePerKey(_preferred_entry))
    known, unknown_items = _split_bad(events | "KnownItems" >> beam.FlatMap(_known_item, items=items), "Known")
    buckets = bucket_count(events_files)
    user_buckets = (known
                    | "UserBuckets" >> beam.Map(_user_bucket, buckets)
                    | "UserBucketFiles" >> _GroupIntoBucketFiles(bucket_dir))
    timelines, duplicates = _split_bad(user_buckets | "Timelines" >> beam.FlatMap(
        _bucket_timelines, history_length, split, eval_fraction, seed), "Timelines")
    train_events = timelines | "TrainEvents" >> beam.Filter(lambda entry: entry[0] == TRAIN)
    item_counts = (train_events | "TrainItems" >> beam.Map(lambda entry: entry[1].item_id)
                   | "CountItems" >> beam.combiners.Count.PerElement())
    user_counts = (train_events | "TrainUsers" >> beam.Map(lambda entry: entry[1].user_id)
                   | "CountUsers" >> beam.combiners.Count.PerElement())
    bad_items = catalogue | "BadItems" >> beam.FlatMap(lambda entry: [entry[1]] if _is_bad(entry[1]) else [])
    _ = ((bad_items, bad_events, unknown_items, duplicates, bad_users) | "AllBad" >> beam.Flatten()
         | "Quarantine" >> _WriteQuarantine(
             screened | "CountEventRows" >> beam.combiners.Count.Globally(),
             catalogue | "CountItemRows" >> beam.combiners.Count.Globally(),
             user_rows | "CountUserRows" >> beam.combiners.Count.Globally() if reads_users else None,
             quarantine_dir, lines))
    examples = user_buckets | "AddHistorySplitAndSlices" >> beam.FlatMap(
        _bucket_examples, history_length=history_length, split=split, eval_fraction=eval_fraction, seed=seed,
        items=items, item_counts=beam.pvalue.AsDict(item_counts), user_counts=beam.pvalue.AsDict(user_counts),
        users=beam.pvalue.AsDict(users), declared=declared)
    train, eval_ = examples | "Split" >> beam.Partition(lambda pair, _: int(pair[0] == EVAL), 2)
    return {
        TRAIN: train | "TrainExamples" >> beam.Values(),
        EVAL: eval_ | "EvalExamples" >> beam.Values(),
    }


class _ToBucketFiles(beam.DoFn):
    """Appends each (bucket, record) to its bucket's file, in files of this bundle's own; yields (bucket, file)
    for each file once the bundle is done."""

    def __init__(self, directory: str):
        self._directory = directory
        self._files: dict[int, tuple[str, Any]] = {}

    def setup(self) -> None:
        tf.io.gfile.makedirs(self._directory)

    def start_bundle(self) -> None:
        self._bundle = uuid.uuid4().hex
        self._files = {}

    def process(self, keyed: tuple[int, bytes]) -> None:
        bucket, record = keyed
        if bucket not in self._files:
            path = os.path.join(self._directory, f"bucket-{bucket:05d}-{self._bundle}.tfrecord")
            self._files[bucket] = (path, tf.io.TFRecordWriter(path))
        self._files[bucket][1].write(record)

    def finish_bundle(self) -> Iterator[Any]:
        for bucket, (path, writer) in self._files.items():
            writer.close()
            yield beam.transforms.window.GlobalWindows.windowed_value((bucket, path))


@beam.ptransform_fn
def _GroupIntoBucketFiles(keyed: beam.PCollection, directory: str) -> beam.PCollection:
    """(bucket, record) pairs -> (bucket, its files in `directory`), one element per bucket: only the files'
    names go through the GroupByKey, so its size does not grow with the records."""
    return keyed | "ToBucketFiles" >> beam.ParDo(_ToBucketFiles(directory)) | "GroupBuckets" >> beam.GroupByKey()


def split_files(split_uri: str) -> list[str]:
    """The gzipped TFRecord files of one split of ExampleGen's output (local or remote, through tf.io.gfile)."""
    return sorted(tf.io.gfile.glob(os.path.join(split_uri, "*")))


def read_split(files: list[str], batch_size: int) -> tf.data.Dataset:
    """Batches of the serialized tf.Examples in `files` (see split_files), which the Evaluator and the
    RetrievalEvaluator parse for the columns they need."""
    return tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)


def _read_records(paths: Iterable[str]) -> Iterator[bytes]:
    """The records of a bucket's files, in the files' name order."""
    for batch in tf.data.TFRecordDataset(sorted(paths)).batch(4096).as_numpy_iterator():
        yield from batch.tolist()


def _write_bucket(bucket_files: tuple[int, Iterable[str]], output_dir: str, buckets: int) -> str:
    """Writes one bucket's examples, in an order that depends only on which examples they are, as one gzipped
    TFRecord file of the split; removes the bucket's files; returns the path written."""
    bucket, paths = bucket_files
    paths = list(paths)
    records = sorted(_read_records(paths))
    random.Random(bucket).shuffle(records)
    tf.io.gfile.makedirs(output_dir)
    output = os.path.join(output_dir, f"data_tfrecord-{bucket:05d}-of-{buckets:05d}.gz")
    with tf.io.TFRecordWriter(output, options="GZIP") as writer:
        for record in records:
            writer.write(record)
    for path in paths:
        tf.io.gfile.remove(path)
    return output


@beam.ptransform_fn
def ShuffleAndWrite(examples: beam.PCollection, output_dir: str, bucket_dir: str,
                    buckets: int = MIN_BUCKETS) -> beam.PCollection:
    """Writes tf.Examples to gzipped TFRecord files of `output_dir` in a shuffled order; returns the files' paths.

    TFX's own write shuffles with a Reshuffle, which a DirectRunner does in memory (and in arrival order): all of
    a split at once, ~3 KB per example. Here each example goes to one of `buckets` files in `bucket_dir` by a hash
    of its bytes, and each bucket is then shuffled and written on its own. The order is the same on every runner.
    """
    return (examples
            | "Serialize" >> beam.Map(lambda example: example.SerializeToString(deterministic=True))
            | "Bucket" >> beam.Map(lambda record: (zlib.crc32(record) % buckets, record))
            | "BucketFiles" >> _GroupIntoBucketFiles(bucket_dir)
            | "WriteBuckets" >> beam.Map(_write_bucket, output_dir, buckets))


def read_row_counts(examples_uri: str) -> dict[str, dict[str, Any]]:
    with tf.io.gfile.GFile(os.path.join(examples_uri, QUARANTINE_DIR, ROW_COUNTS_FILE)) as handle:
        return json.load(handle)


def resolved_window(input_base: str, exec_properties: dict[str, Any]) -> window.Window | None:
    """The window of daily partitions the run reads: the one the driver resolved (and the cache keyed on), or,
    where no driver runs (Kubeflow), the one the window config resolves to now; None for one events.csv."""
    if exec_properties.get(WINDOW_KEY):
        return window.Window.from_json(exec_properties[WINDOW_KEY])
    config = window_config(exec_properties)
    return window.resolve(input_base, config) if config else None


def window_config(exec_properties: dict[str, Any]) -> window.WindowConfig | None:
    """The window the execution properties ask for, its last day set by DATA_DAY_KEY; None for one events.csv."""
    config = window.WindowConfig.from_json(exec_properties.get(WINDOW_CONFIG_KEY) or "")
    day = exec_properties.get(DATA_DAY_KEY) or None
    return dataclasses.replace(config, day=day) if config and day else config


def _first_quarantined(examples_uri: str, count: int) -> list[str]:
    """Descriptions of the first `count` quarantined events (file, line, column, reason)."""
    found = []
    with tf.io.gfile.GFile(os.path.join(examples_uri, QUARANTINE_DIR, QUARANTINE_FILE)) as handle:
        for line in handle:
            row = input_contract.BadRow(**json.loads(line))
            if window.is_events_file(row.file) and len(found) < count:
                found.append(row.describe())
    return found


class Executor(BaseExampleGenExecutor):
    """Overrides GenerateExamplesByBeam (the join, history and split need the whole input, not one file) and the
    writing of the splits (ShuffleAndWrite, whose memory does not grow with the data)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return EventsToSplitExamples

    def Do(self, input_dict: dict[str, list[Any]], output_dict: dict[str, list[Any]],
           exec_properties: dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        self._quarantine_dir = os.path.join(examples.uri, QUARANTINE_DIR)
        self._bucket_dir = os.path.join(examples.uri, BUCKET_DIR)
        self._max_timestamp = int(time.time()) + FUTURE_TOLERANCE_SECONDS
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        self._window = resolved_window(input_base, exec_properties)
        if self._window is not None:
            self._events_files = self._window.files(input_base)
            window.check_headers(self._events_files)
            examples.span = self._window.span
            examples.set_string_custom_property(WINDOW_PROPERTY, self._window.to_json())
        else:
            self._events_files = [os.path.join(input_base, input_contract.EVENTS_FILE)]
        self._write_splits(examples, exec_properties)
        counts = read_row_counts(examples.uri)
        events = counts[input_contract.EVENTS_FILE]
        if events["rows"] == events["quarantined"]:
            source = (f"{os.path.join(input_base, window.EVENTS_DIR)} ({self._window.describe()})" if self._window
                      else os.path.join(input_base, input_contract.EVENTS_FILE))
            raise input_contract.InputError(
                f"{source}: no usable events; all {events['rows']} rows are quarantined, e.g. "
                + "; ".join(_first_quarantined(examples.uri, 3)))
        examples.set_string_custom_property(ROW_COUNTS_PROPERTY, json.dumps(counts, sort_keys=True))

    def _write_splits(self, examples: Any, exec_properties: dict[str, Any]) -> None:
        """What BaseExampleGenExecutor.Do does, with ShuffleAndWrite in place of TFX's in-memory shuffle."""
        examples.split_names = artifact_utils.encode_split_names([TRAIN, EVAL])
        buckets = bucket_count(self._events_files)
        try:
            with self._make_beam_pipeline() as pipeline:
                for split, split_examples in self.GenerateExamplesByBeam(pipeline, exec_properties).items():
                    _ = split_examples | f"WriteSplit[{split}]" >> ShuffleAndWrite(
                        artifact_utils.get_split_uri([examples], split), os.path.join(self._bucket_dir, split),
                        buckets)
        finally:  # the bucket files are scratch space, removed also when the run failed
            if tf.io.gfile.exists(self._bucket_dir):
                tf.io.gfile.rmtree(self._bucket_dir)
        examples_utils.set_payload_format(examples, exec_properties[standard_component_specs.OUTPUT_DATA_FORMAT_KEY])
        examples_utils.set_file_format(examples, write_split.to_file_format_str(
            exec_properties[standard_component_specs.OUTPUT_FILE_FORMAT_KEY]))

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]
                               ) -> dict[str, beam.PCollection]:
        return pipeline | "EventsToSplitExamples" >> EventsToSplitExamples(
            input_dir=exec_properties[standard_component_specs.INPUT_BASE_KEY],
            history_length=exec_properties[HISTORY_LENGTH_KEY],
            split=exec_properties[SPLIT_KEY],
            eval_fraction=exec_properties[EVAL_FRACTION_KEY],
            seed=exec_properties[SEED_KEY],
            quarantine_dir=self._quarantine_dir,
            bucket_dir=os.path.join(self._bucket_dir, "users"),
            max_timestamp=self._max_timestamp,
            labels=json.loads(exec_properties[LABEL_COLUMNS_KEY]),
            require_text=bool(exec_properties[REQUIRE_TEXT_KEY]),
            declared=features.declared(json.loads(exec_properties[FEATURES_KEY])),
            events_files=self._events_files,
        )
