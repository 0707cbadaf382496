"""EventsExampleGen: the join with item text, history without leakage, and both split modes."""

from __future__ import annotations

import dataclasses
import json

import apache_beam as beam
from apache_beam.testing import util as beam_util

from components.example_gen import executor, input_contract
from models import features


def _event(user, item, timestamp):
    return input_contract.Event(user_id=user, item_id=item, timestamp=timestamp,
                                labels={features.CLICKED: 1, features.RATING: 4.0})


ITEM = {name: input_contract.Item(name, f"title {name}", "", ("c",)) for name in "abcdef"}


def _attached(events):
    """(line, event, item) triples, as the join hands them to user_examples."""
    return [(line, event, ITEM[event.item_id]) for line, event in enumerate(events, start=2)]


def _values(example, key):
    feature = example.features.feature[key]
    return [v.decode() for v in feature.bytes_list.value] or list(feature.int64_list.value)


def test_history_holds_only_strictly_earlier_items_most_recent_first():
    events = [_event("u", "a", 10), _event("u", "b", 20), _event("u", "c", 20), _event("u", "d", 30)]
    out = list(executor.user_examples(_attached(reversed(events)), history_length=5,
                                      split="time", eval_fraction=0.25, seed=0))
    history = {_values(ex, features.ITEM_ID)[0]: _values(ex, features.HISTORY) for _, ex in out}
    # b and c share a timestamp: neither sees the other.
    assert history == {"a": [], "b": ["a"], "c": ["a"], "d": ["c", "b", "a"]}


def test_history_is_truncated_to_its_length():
    events = [_event("u", item, t) for t, item in enumerate("abcde")]
    out = list(executor.user_examples(_attached(events), 2, "time", 0.2, 0))
    assert _values(out[-1][1], features.HISTORY) == ["d", "c"]


def test_time_split_puts_each_users_latest_events_in_eval():
    events = [_event("u", item, t) for t, item in enumerate("abcdef")]
    out = list(executor.user_examples(_attached(events), 5, "time", 0.34, 0))
    assert [split for split, _ in out] == ["train"] * 4 + ["eval"] * 2


def test_a_repeated_event_is_quarantined_and_left_out_of_history_and_split():
    events = [_event("u", "a", 1), _event("u", "b", 2), _event("u", "a", 1), _event("u", "c", 3)]
    out = list(executor.user_examples(_attached(events), 5, "time", 0.34, 0))
    [duplicate] = [entry for entry in out if isinstance(entry, input_contract.BadRow)]
    assert duplicate.describe() == "events.csv, line 4: duplicate of line 2 (same user, item and timestamp)"
    examples = [entry for entry in out if not isinstance(entry, input_contract.BadRow)]
    assert [_values(ex, features.HISTORY) for _, ex in examples] == [[], ["a"], ["b", "a"]]
    assert [split for split, _ in examples] == ["train", "train", "eval"]


def test_a_single_event_user_stays_in_train():
    out = list(executor.user_examples(_attached([_event("u", "a", 1)]), 5, "time", 0.5, 0))
    assert [split for split, _ in out] == ["train"]


def test_random_split_is_seeded():
    events = _attached([_event(f"u{i}", "a", i) for i in range(400)])

    def splits(seed):
        return [s for e in events for s, _ in executor.user_examples([e], 5, "random", 0.25, seed)]

    assert splits(1) == splits(1)
    assert splits(1) != splits(2)
    assert 0.18 < splits(1).count("eval") / 400 < 0.32


def test_beam_pipeline_joins_item_text_and_splits(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,title,description,categories\na,Rocket,To orbit,space|sky\n"
                                        "b,Bread,Oven,cooking\n")
    (tmp_path / "events.csv").write_text("user_id,item_id,timestamp,clicked,rating\n"
                                         "u1,a,1,1,5\nu1,b,2,0,2\nu2,b,5,1,4\n")

    def summary(example):
        return (_values(example, features.USER_ID)[0], _values(example, features.TITLE)[0],
                tuple(_values(example, features.CATEGORIES)), tuple(_values(example, features.HISTORY)),
                _values(example, features.ITEM_POPULARITY)[0])

    with beam.Pipeline() as pipeline:
        splits = pipeline | executor.EventsToSplitExamples(str(tmp_path), 3, "time", 0.5, 0,
                                                           str(tmp_path / "quarantine"), str(tmp_path / "buckets"))
        beam_util.assert_that(splits["train"] | "T" >> beam.Map(summary),
                              beam_util.equal_to([("u1", "Rocket", ("space", "sky"), (), "rare"),
                                                  ("u2", "Bread", ("cooking",), (), "rare")]), label="train")
        beam_util.assert_that(splits["eval"] | "E" >> beam.Map(summary),
                              beam_util.equal_to([("u1", "Bread", ("cooking",), ("a",), "rare")]), label="eval")


def test_slices_come_from_train_counts():
    assert [executor.bucket(n, executor.POPULARITY_BUCKETS) for n in (0, 1, 9, 10, 49, 50, 500)] == [
        "cold", "rare", "rare", "medium", "medium", "popular", "popular"]
    example = executor.to_example(_event("u", "a", 1), ITEM["a"], [])
    _, annotated = executor.add_slices(("eval", example), {"a": 12}, {})
    assert _values(annotated, features.ITEM_POPULARITY) == ["medium"]
    assert _values(annotated, features.USER_ACTIVITY) == ["new"]  # the user has no train events


def test_shuffle_and_write_writes_every_example_once_in_a_shuffled_order_that_is_the_same_every_time(tmp_path):
    import tensorflow as tf

    examples = [tf.train.Example(features=tf.train.Features(feature={
        "n": tf.train.Feature(int64_list=tf.train.Int64List(value=[n]))})) for n in range(300)]

    def write(name: str) -> list[list[int]]:
        output, buckets = tmp_path / name / "out", tmp_path / name / "buckets"
        with beam.Pipeline() as pipeline:
            _ = (pipeline | beam.Create(examples)
                 | executor.ShuffleAndWrite(str(output), str(buckets), buckets=4))
        assert list(buckets.iterdir()) == []  # the bucket files are gone once written
        files = sorted(output.iterdir())
        assert [path.name for path in files] == [f"data_tfrecord-{b:05d}-of-00004.gz" for b in range(4)]
        return [[tf.train.Example.FromString(record).features.feature["n"].int64_list.value[0]
                 for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP").as_numpy_iterator()]
                for path in files]

    first = write("first")
    assert sorted(n for file in first for n in file) == list(range(300))
    assert all(file != sorted(file) for file in first)
    assert write("second") == first


def test_a_users_events_meet_in_one_bucket_whichever_file_and_bundle_they_came_in(tmp_path):
    import tensorflow as tf

    events = [_event(user, item, t) for t, (user, item) in enumerate(
        [("u1", "a"), ("u2", "b"), ("u1", "c"), ("u3", "a"), ("u2", "d"), ("u1", "e")])]
    keyed = [executor._user_bucket((event.user_id, (line, *dataclasses.astuple(event))), 2)
             for line, event in enumerate(events, start=2)]
    files = {}
    for index, (bucket, record) in enumerate(keyed):  # two files per bucket, as two bundles would write
        path = str(tmp_path / f"bucket-{bucket}-{index % 2}")
        files.setdefault(bucket, {}).setdefault(path, []).append(record)
    for paths in files.values():
        for path, records in paths.items():
            with tf.io.TFRecordWriter(path) as writer:
                for record in records:
                    writer.write(record)
    users = {}
    for bucket, paths in files.items():
        for user_events in executor._bucket_users((bucket, list(paths))):
            assert len({event.user_id for _, event in user_events}) == 1
            assert user_events[0][1].user_id not in users  # a user is in one bucket only
            users[user_events[0][1].user_id] = sorted(user_events)
    assert users == {user: [(line, event) for line, event in enumerate(events, start=2) if event.user_id == user]
                     for user in ("u1", "u2", "u3")}


def test_the_bucket_count_grows_with_the_events_file(tmp_path, monkeypatch):
    monkeypatch.setattr(executor, "BUCKET_BYTES", 100)
    path = tmp_path / "events.csv"
    assert executor.bucket_count([str(path)]) == executor.MIN_BUCKETS  # missing: reported by the reader
    path.write_bytes(b"x" * 100 * executor.MIN_BUCKETS)
    assert executor.bucket_count([str(path)]) == executor.MIN_BUCKETS
    path.write_bytes(b"x" * (100 * executor.MIN_BUCKETS + 1))
    assert executor.bucket_count([str(path)]) == executor.MIN_BUCKETS + 1
    other = tmp_path / "2022-04-26.csv"  # the day files of a window count together
    other.write_bytes(b"x" * 100)
    assert executor.bucket_count([str(path), str(other)]) == executor.MIN_BUCKETS + 2


def test_declared_labels_reach_the_examples_and_a_text_free_catalogue_is_read(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,categories\na,space\nb,\n")  # no text: the text tower is off
    (tmp_path / "events.csv").write_text("user_id,item_id,timestamp,is_click,watch_ratio,tab\n"
                                         "u1,a,1,1,0.5,2\nu1,b,2,0,1.25,2\nu1,b,3,2,0.1,2\n")
    labels = {"is_click": features.BINARY_LABEL, "watch_ratio": features.NUMERIC_LABEL}

    def summary(example):
        feature = example.features.feature
        return (_values(example, features.ITEM_ID)[0], list(feature["is_click"].int64_list.value),
                list(feature["watch_ratio"].float_list.value), "tab" in feature, "clicked" in feature)

    with beam.Pipeline() as pipeline:
        splits = pipeline | executor.EventsToSplitExamples(
            str(tmp_path), 3, "random", 0.01, 0, str(tmp_path / "quarantine"), str(tmp_path / "buckets"),
            labels=labels, require_text=False)
        beam_util.assert_that(splits["train"] | beam.Map(summary),
                              beam_util.equal_to([("a", [1], [0.5], False, False), ("b", [0], [1.25], False, False)]))
    # The third event's is_click of 2 is quarantined, naming the column.
    [bad] = (tmp_path / "quarantine" / executor.QUARANTINE_FILE).read_text().splitlines()
    row = input_contract.BadRow(**json.loads(bad))
    assert (row.line, row.column, row.reason) == (4, "is_click", "2 is not 0 or 1")
    assert row.row["watch_ratio"] == "0.1"  # the row as read, to fix and feed again
