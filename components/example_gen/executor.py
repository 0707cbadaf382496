"""Beam executor of EventsExampleGen: CSV rows -> joined, history-enriched, split tf.Examples."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import standard_component_specs

from components.example_gen import input_contract
from models import features

SPLIT_MODES = ("time", "random")
TRAIN, EVAL = "train", "eval"
HISTORY_LENGTH_KEY = "history_length"
SPLIT_KEY = "split"
EVAL_FRACTION_KEY = "eval_fraction"
SEED_KEY = "seed"
# A fingerprint of mtrec's own code: part of the execution properties, so that ML Metadata's cache never
# hands examples written by older code to newer code.
CODE_VERSION_KEY = "code_version"
# Train-split event counts -> slice names: (lowest count of the bucket, name), ascending.
POPULARITY_BUCKETS = ((0, "cold"), (1, "rare"), (10, "medium"), (50, "popular"))
ACTIVITY_BUCKETS = ((0, "new"), (1, "light"), (10, "regular"), (50, "heavy"))


def _bytes(*values: str) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))


def to_example(event: input_contract.Event, item: input_contract.Item, history: list[str]) -> tf.train.Example:
    return tf.train.Example(features=tf.train.Features(feature={
        features.USER_ID: _bytes(event.user_id),
        features.ITEM_ID: _bytes(event.item_id),
        features.TIMESTAMP: tf.train.Feature(int64_list=tf.train.Int64List(value=[event.timestamp])),
        features.CLICKED: tf.train.Feature(int64_list=tf.train.Int64List(value=[event.clicked])),
        features.RATING: tf.train.Feature(float_list=tf.train.FloatList(value=[event.rating])),
        features.TITLE: _bytes(item.title),
        features.DESCRIPTION: _bytes(item.description),
        features.CATEGORIES: _bytes(*item.categories),
        features.HISTORY: _bytes(*history),
    }))


def _random_is_eval(event: input_contract.Event, eval_fraction: float, seed: int) -> bool:
    key = f"{seed}\x00{event.user_id}\x00{event.item_id}\x00{event.timestamp}".encode()
    draw = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
    return draw < eval_fraction


def user_examples(
    events: Iterable[tuple[input_contract.Event, input_contract.Item]],
    history_length: int,
    split: str,
    eval_fraction: float,
    seed: int,
) -> Iterator[tuple[str, tf.train.Example]]:
    """Yields (split, example) for one user's events.

    The history of an event holds the item ids of the user's events with a strictly earlier timestamp, most
    recent first, so no event sees its own item or anything at or after its own time. With the "time" split,
    the latest `eval_fraction` of the user's events (at least one, if the user has two or more) go to eval.
    """
    ordered = sorted(events, key=lambda pair: (pair[0].timestamp, pair[0].item_id))
    num_eval = 0
    if split == "time" and len(ordered) >= 2:
        num_eval = min(len(ordered) - 1, max(1, round(len(ordered) * eval_fraction)))
    earlier = 0  # ordered[:earlier] are the events strictly before the current timestamp
    for index, (event, item) in enumerate(ordered):
        while ordered[earlier][0].timestamp < event.timestamp:
            earlier += 1
        history = [e.item_id for e, _ in ordered[max(0, earlier - history_length):earlier]][::-1]
        if split == "time":
            is_eval = index >= len(ordered) - num_eval
        else:
            is_eval = _random_is_eval(event, eval_fraction, seed)
        yield (EVAL if is_eval else TRAIN), to_example(event, item, history)


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


def _train_counts(examples: beam.PCollection, key: str, label: str) -> beam.PCollection:
    return (examples
            | f"Train{label}" >> beam.Filter(lambda pair: pair[0] == TRAIN)
            | f"{label}Ids" >> beam.Map(lambda pair: pair[1].features.feature[key].bytes_list.value[0].decode())
            | f"Count{label}" >> beam.combiners.Count.PerElement())


def _attach_item(joined: tuple[str, dict[str, list[Any]]]) -> Iterator[tuple[str, tuple]]:
    item_id, group = joined
    if not group["items"]:
        line, _ = group["events"][0]
        raise input_contract.InputError(
            f"{input_contract.EVENTS_FILE}, line {line}, column '{features.ITEM_ID}': item {item_id!r} is not in "
            f"the item catalogue")
    item = group["items"][0]
    for _, event in group["events"]:
        yield event.user_id, (event, item)


@beam.ptransform_fn
def EventsToSplitExamples(
    pipeline: beam.Pipeline, input_dir: str, history_length: int, split: str, eval_fraction: float, seed: int
) -> dict[str, beam.PCollection]:
    """Reads the two CSV files of `input_dir`; returns {'train': examples, 'eval': examples}."""
    items = (
        pipeline
        | "ItemsPath" >> beam.Create([os.path.join(input_dir, input_contract.ITEMS_FILE)])
        | "ReadItems" >> beam.FlatMap(lambda path: input_contract.read_items(path).items())
    )
    events = (
        pipeline
        | "EventsPath" >> beam.Create([os.path.join(input_dir, input_contract.EVENTS_FILE)])
        | "ReadEvents" >> beam.FlatMap(input_contract.iter_events)
        | "KeyByItem" >> beam.Map(lambda line_event: (line_event[1].item_id, line_event))
    )
    examples = (
        {"items": items, "events": events}
        | "JoinItemText" >> beam.CoGroupByKey()
        | "AttachItem" >> beam.FlatMap(_attach_item)
        | "GroupByUser" >> beam.GroupByKey()
        | "AddHistoryAndSplit" >> beam.FlatMap(
            lambda user: user_examples(user[1], history_length, split, eval_fraction, seed))
    )
    examples = examples | "AddSlices" >> beam.Map(
        add_slices,
        item_counts=beam.pvalue.AsDict(_train_counts(examples, features.ITEM_ID, "Items")),
        user_counts=beam.pvalue.AsDict(_train_counts(examples, features.USER_ID, "Users")))
    train, eval_ = examples | "Split" >> beam.Partition(lambda pair, _: int(pair[0] == EVAL), 2)
    return {
        TRAIN: train | "TrainExamples" >> beam.Values(),
        EVAL: eval_ | "EvalExamples" >> beam.Values(),
    }


class Executor(BaseExampleGenExecutor):
    """Overrides GenerateExamplesByBeam: the join, history and split need the whole input, not one file."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return EventsToSplitExamples

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]
                               ) -> dict[str, beam.PCollection]:
        return pipeline | "EventsToSplitExamples" >> EventsToSplitExamples(
            input_dir=exec_properties[standard_component_specs.INPUT_BASE_KEY],
            history_length=exec_properties[HISTORY_LENGTH_KEY],
            split=exec_properties[SPLIT_KEY],
            eval_fraction=exec_properties[EVAL_FRACTION_KEY],
            seed=exec_properties[SEED_KEY],
        )
