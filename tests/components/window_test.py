"""Daily partitions: which days a window reads, the refusals that name a day, and a window's events read as one
table whose quarantined rows still name their day file and line."""

from __future__ import annotations

import json
import os

import apache_beam as beam
import pytest

from components.example_gen import executor, input_contract, window
from pipeline.data import partitions

HEADER = "user_id,item_id,timestamp,clicked,rating\n"
ITEMS = "item_id,title,description,categories\ni1,One,,a\ni2,Two,,b\n"
DAY = 86_400
T0 = 1_650_844_800  # 2022-04-25 00:00 UTC


def _days(tmp_path, rows_by_day: dict[str, str], header: str = HEADER) -> str:
    """`tmp_path` with events/DAY.csv for each day (the header plus its rows) and items.csv."""
    (tmp_path / window.EVENTS_DIR).mkdir(exist_ok=True)
    for day, rows in rows_by_day.items():
        (tmp_path / window.EVENTS_DIR / f"{day}.csv").write_text(header + rows)
    (tmp_path / "items.csv").write_text(ITEMS)
    return str(tmp_path)


def test_window_days_takes_the_latest_days_up_to_the_given_day(tmp_path):
    base = _days(tmp_path, dict.fromkeys(["2022-04-24", "2022-04-25", "2022-04-26", "2022-04-27"], ""))
    assert window.resolve(base, window.WindowConfig(window_days=2)).days == ("2022-04-26", "2022-04-27")
    chosen = window.resolve(base, window.WindowConfig(window_days=3, day="2022-04-26"))
    assert chosen.days == ("2022-04-24", "2022-04-25", "2022-04-26")
    assert chosen.span == 19108  # 2022-04-26 is day 19108 since 1970-01-01, TFX's span of a date spec
    named = window.resolve(base, window.WindowConfig(span=("2022-04-27", "2022-04-24")))
    assert named.days == ("2022-04-24", "2022-04-27")


def test_a_missing_day_is_refused_by_name_or_skipped_as_configured(tmp_path):
    base = _days(tmp_path, dict.fromkeys(["2022-04-24", "2022-04-26"], ""))
    with pytest.raises(input_contract.InputError, match=r"has no file for 2022-04-25 \(set data.missing_days"):
        window.resolve(base, window.WindowConfig(window_days=3, day="2022-04-26"))
    skipped = window.resolve(base, window.WindowConfig(window_days=3, day="2022-04-26", missing_days="skip"))
    assert skipped == window.Window(("2022-04-24", "2022-04-26"), ("2022-04-25",))
    with pytest.raises(input_contract.InputError, match="no file for any day of the window 2022-05-01"):
        window.resolve(base, window.WindowConfig(span=("2022-05-01",), missing_days="skip"))


def test_a_file_that_is_not_a_day_is_named(tmp_path):
    base = _days(tmp_path, {"2022-04-24": "", "2022-4-25": ""})
    with pytest.raises(input_contract.InputError, match=r"2022-4-25.csv: not a day's file"):
        window.resolve(base, window.WindowConfig(window_days=1))
    with pytest.raises(input_contract.InputError, match="no daily partitions"):
        window.available_days(str(tmp_path / "nowhere"))


def test_a_day_with_a_different_header_is_named_with_the_difference(tmp_path):
    base = _days(tmp_path, {"2022-04-24": "", "2022-04-25": ""})
    (tmp_path / window.EVENTS_DIR / "2022-04-26.csv").write_text("user_id,item_id,timestamp,clicked,stars\n")
    files = window.resolve(base, window.WindowConfig(window_days=3)).files(base)
    with pytest.raises(input_contract.InputError) as raised:
        window.check_headers(files)
    message = str(raised.value)
    assert message.startswith(os.path.join(base, "events", "2022-04-26.csv"))
    assert "['stars']" in message and "missing columns: ['rating']" in message
    window.check_headers(files[:2])  # the same header passes


def test_line_map_names_the_day_file_and_its_own_line(tmp_path):
    base = _days(tmp_path, {"2022-04-24": "u,i1,1,1,1\nu,i1,2,1,1\n", "2022-04-25": "u,i1,3,1,1\n"})
    lines = window.LineMap.of(window.resolve(base, window.WindowConfig(window_days=2)).files(base))
    assert lines.offsets == (0, 3)
    assert [lines.locate(line) for line in (2, 3, 5)] == [
        ("events/2022-04-24.csv", 2), ("events/2022-04-24.csv", 3), ("events/2022-04-25.csv", 2)]


def test_a_windows_events_are_read_as_one_log_and_bad_rows_name_their_day(tmp_path):
    base = _days(tmp_path, {
        "2022-04-25": f"u1,i1,{T0},1,4\nu1,i2,{T0 + 60},0,oops\n",
        "2022-04-26": f"u1,i2,{T0 + DAY},1,3\nu1,i9,{T0 + DAY + 5},1,3\n",
        "2022-04-27": f"u1,i1,{T0 + 2 * DAY},0,2\n"})
    files = window.resolve(base, window.WindowConfig(window_days=2)).files(base)
    out = str(tmp_path / "out")
    with beam.Pipeline() as pipeline:
        splits = pipeline | executor.EventsToSplitExamples(
            base, 5, "time", 0.3, 0, os.path.join(out, "quarantine"), os.path.join(out, "buckets"),
            max_timestamp=T0 + 10 * DAY, events_files=files)
        _ = ((splits["train"], splits["eval"]) | beam.Flatten()
             | beam.Map(lambda example: example.features.feature["history"].bytes_list.value[0].decode()
                        if example.features.feature["history"].bytes_list.value else "")
             | beam.io.WriteToText(os.path.join(out, "histories"), num_shards=1, shard_name_template=""))
    with open(os.path.join(out, "quarantine", executor.QUARANTINE_FILE), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    assert [(row["file"], row["line"], row["column"]) for row in rows] == [("events/2022-04-26.csv", 3, "item_id")]
    with open(os.path.join(out, "quarantine", executor.ROW_COUNTS_FILE), encoding="utf-8") as handle:
        counts = json.load(handle)
    assert counts["events.csv"]["rows"] == 3 and counts["events.csv"]["quarantined"] == 1
    # The day before the window (the bad rating there) is not read; the last day's event has the first's history.
    with open(os.path.join(out, "histories"), encoding="utf-8") as handle:
        assert sorted(handle.read().split("\n")[:-1]) == ["", "i2"]


def test_write_daily_partitions_a_log_by_its_local_day(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "events.csv").write_text(HEADER + f"u1,i1,{T0 - 3600},1,4\nu1,i2,{T0 + 3600},0,3\n")
    (flat / "items.csv").write_text(ITEMS)
    assert partitions.write_daily(str(flat), str(tmp_path / "utc")) == ["2022-04-24", "2022-04-25"]
    assert (tmp_path / "utc" / "events" / "2022-04-24.csv").read_text() == HEADER + f"u1,i1,{T0 - 3600},1,4\n"
    assert (tmp_path / "utc" / "items.csv").read_text() == ITEMS
    assert partitions.write_daily(str(flat), str(tmp_path / "east"), utc_offset_hours=8) == ["2022-04-25"]
    (flat / "events.csv").write_text(HEADER + "u1,i1,yesterday,1,4\n")
    with pytest.raises(input_contract.InputError, match="line 2, column 'timestamp'"):
        partitions.write_daily(str(flat), str(tmp_path / "bad"))
