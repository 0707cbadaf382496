"""Declared features in the input contract and ExampleGen: parsing per type, quarantine of malformed values and of
repeated users, the file checks, and the values each example carries."""

from __future__ import annotations

import os

import apache_beam as beam
import pytest
import tensorflow as tf

from components.example_gen import executor, input_contract
from models import features
from models.features import Feature

DEVICE = Feature("device", features.EVENTS_SOURCE, features.CATEGORICAL)
HOUR = Feature("hour", features.EVENTS_SOURCE, features.TIMESTAMP_PART)
TAGS = Feature("tags", features.ITEMS_SOURCE, features.MULTI_CATEGORICAL, separator=";")
AGE = Feature("age", features.USERS_SOURCE, features.NUMERIC, missing_values=[-124.0])
TENURE = Feature("tenure", features.USERS_SOURCE, features.NUMERIC, normalization=features.LOG1P)
DECLARED = [DEVICE, HOUR, TAGS, AGE, TENURE]

EVENTS = "user_id,item_id,timestamp,clicked,rating,device\nu1,a,100,1,4,tv\nu1,b,200,0,2,\nu2,a,300,1,5,phone\n" \
         "u3,b,400,0,1,tv\nu2,b,500,1,3,tv\n"
ITEMS = "item_id,title,tags\na,A,x;y;x\nb,B,\n"
USERS = "user_id,age,tenure,unread\nu1,30,5,z\nu2,-124,,z\nu1,40,6,z\nu4,abc,1,z\n"


def _write(directory, events=EVENTS, items=ITEMS, users=USERS):
    os.makedirs(directory, exist_ok=True)
    for name, text in ((input_contract.EVENTS_FILE, events), (input_contract.ITEMS_FILE, items),
                       (input_contract.USERS_FILE, users)):
        if text is not None:
            with open(os.path.join(directory, name), "w", encoding="utf-8") as handle:
                handle.write(text)
    return str(directory)


@pytest.mark.parametrize(("feature", "text", "values"), [
    (DEVICE, " tv ", ("tv",)),
    (DEVICE, "", ()),
    (TAGS, "x; y ;x;;", ("x", "y")),
    (TAGS, "", ()),
    (AGE, "30", (30.0,)),
    (AGE, "-124", ()),  # a declared sentinel is missing
    (AGE, "", ()),
    (TENURE, "0", (0.0,)),
])
def test_values_of_each_type(feature, text, values):
    assert input_contract.feature_values("f.csv", 2, {feature.name: text}, feature) == values


@pytest.mark.parametrize(("feature", "text", "reason"), [
    (AGE, "thirty", "'thirty' is not float"),
    (AGE, "nan", "'nan' is not a finite number"),
    (TENURE, "-1", "-1.0 is negative (the feature is normalised by log1p)"),
])
def test_malformed_numbers_name_the_column(feature, text, reason):
    with pytest.raises(input_contract.RowError) as raised:
        input_contract.feature_values("users.csv", 7, {feature.name: text}, feature)
    assert str(raised.value) == f"users.csv, line 7, column '{feature.name}': {reason}"


def test_users_repeated_or_malformed_are_quarantined(tmp_path):
    path = os.path.join(_write(tmp_path), input_contract.USERS_FILE)
    users, bad = input_contract.screen_users(path, DECLARED)
    assert users == {"u1": input_contract.User("u1", {"age": (30.0,), "tenure": (5.0,)}),
                     "u2": input_contract.User("u2", {"age": (), "tenure": ()})}
    assert [(row.line, row.column, row.reason) for row in bad] == [
        (4, "user_id", "user 'u1' already defined on line 2"), (5, "age", "'abc' is not float")]


def test_a_declared_column_missing_from_its_file_rejects_the_run(tmp_path):
    directory = _write(tmp_path, items="item_id,title\na,A\n")
    with pytest.raises(input_contract.InputError) as raised:
        input_contract.check_input_dir(directory, declared=DECLARED)
    assert str(raised.value).startswith(f"{os.path.join(directory, 'items.csv')}: missing required column(s) "
                                        f"['tags']")


def test_users_csv_is_required_only_when_a_user_feature_is_declared(tmp_path):
    directory = _write(tmp_path, users=None)
    assert input_contract.check_input_dir(directory, declared=[DEVICE, TAGS]).user_rows == 0
    with pytest.raises(input_contract.InputError, match="users.csv: input file not found"):
        input_contract.check_input_dir(directory, declared=DECLARED)


def test_the_file_check_counts_users_and_names_unread_columns(tmp_path):
    found = input_contract.check_input_dir(_write(tmp_path), declared=DECLARED)
    assert (found.event_rows, found.item_rows, found.user_rows) == (5, 2, 4)
    assert found.ignored_columns == {"users.csv": ["unread"]}
    assert input_contract.check_input_dir(_write(tmp_path)).ignored_columns == {
        "events.csv": ["device"], "items.csv": ["tags"]}


def _run(directory):
    """(examples by (user, item), quarantined rows, row counts) of ExampleGen's Beam transform."""
    import json

    out = os.path.join(directory, "out")
    with beam.Pipeline() as pipeline:
        splits = pipeline | executor.EventsToSplitExamples(
            directory, 3, "time", 0.5, 0, os.path.join(out, "quarantine"), os.path.join(directory, "buckets"),
            declared=DECLARED)
        _ = ((splits["train"], splits["eval"]) | beam.Flatten() | beam.Map(lambda e: e.SerializeToString())
             | beam.io.WriteToTFRecord(os.path.join(out, "examples"), num_shards=1, shard_name_template=""))
    examples = {}
    for record in tf.data.TFRecordDataset(os.path.join(out, "examples")).as_numpy_iterator():
        feature = tf.train.Example.FromString(record).features.feature
        key = (feature["user_id"].bytes_list.value[0].decode(), feature["item_id"].bytes_list.value[0].decode())
        examples[key] = feature
    with open(os.path.join(out, "quarantine", executor.QUARANTINE_FILE), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    with open(os.path.join(out, "quarantine", executor.ROW_COUNTS_FILE), encoding="utf-8") as handle:
        return examples, rows, json.load(handle)


def test_examples_carry_every_declared_feature_from_its_source(tmp_path):
    examples, rows, counts = _run(_write(tmp_path))
    assert len(examples) == 5  # every event: a user without a readable users.csv row loses nothing
    first = examples[("u1", "a")]
    assert first["device"].bytes_list.value == [b"tv"]
    assert first["tags"].bytes_list.value == [b"x", b"y"]
    assert list(first["age"].float_list.value) == [30.0] and list(first["tenure"].float_list.value) == [5.0]
    assert "hour" not in first  # computed from the timestamp by Transform
    missing = examples[("u1", "b")]
    assert missing["device"].bytes_list.value == [] and missing["tags"].bytes_list.value == []
    assert list(examples[("u2", "a")]["age"].float_list.value) == []  # the sentinel
    unknown = examples[("u3", "b")]  # not in users.csv: missing user features
    assert list(unknown["age"].float_list.value) == [] and list(unknown["tenure"].float_list.value) == []
    assert [(row["file"], row["line"], row["column"]) for row in rows] == [
        ("users.csv", 4, "user_id"), ("users.csv", 5, "age")]
    assert counts["users.csv"] == {"rows": 4, "quarantined": 2, "by_column": {"user_id": 1, "age": 1}}


def test_a_malformed_context_value_quarantines_its_event(tmp_path):
    numeric_device = Feature("device", features.EVENTS_SOURCE, features.NUMERIC)
    directory = _write(tmp_path, events=EVENTS.replace("phone", "3.5").replace(",tv\n", ",x\n", 1))
    events = list(input_contract.screen_events(os.path.join(directory, "events.csv"), declared=[numeric_device]))
    bad = [entry for entry in events if isinstance(entry, input_contract.BadRow)]
    assert [entry.describe() for entry in bad] == [
        "events.csv, line 2, column 'device': 'x' is not float",
        "events.csv, line 5, column 'device': 'tv' is not float",
        "events.csv, line 6, column 'device': 'tv' is not float"]
    good = [entry[1] for entry in events if not isinstance(entry, input_contract.BadRow)]
    assert [event.context for event in good] == [{"device": ()}, {"device": (3.5,)}]
