"""Row faults are quarantined, never dropped: ExampleGen's Beam transform over the table of bad rows
(benchmarks/reliability.py, which `mtrec benchmark reliability` reports on). Each case asserts the exact
quarantined rows (file, line, column, reason), and that examples plus quarantined rows add up to the rows read."""

from __future__ import annotations

import json
import os

import pytest

from benchmarks import reliability
from components.example_gen import executor


def _quarantine(tmp_path, events: str, items: str) -> tuple[list[dict], dict, int]:
    return reliability.quarantine(reliability.write_case(str(tmp_path), events, items))


@pytest.mark.parametrize("case", reliability.ROW_CASES, ids=lambda case: case.name)
def test_bad_rows_are_quarantined_with_their_reason(tmp_path, case):
    rows, counts, examples = _quarantine(tmp_path, case.events, case.items)
    assert tuple((row["file"], row["line"], row["column"], row["reason"]) for row in rows) == case.quarantined
    event_rows, item_rows = case.events.count("\n") - 1, case.items.count("\n") - 1
    bad_events = sum(file == "events.csv" for file, *_ in case.quarantined)
    assert counts["events.csv"]["rows"] == event_rows and counts["events.csv"]["quarantined"] == bad_events
    assert counts["items.csv"]["rows"] == item_rows
    assert counts["items.csv"]["quarantined"] == len(case.quarantined) - bad_events
    assert examples + bad_events == event_rows  # no row is lost: every one is an example or quarantined
    assert reliability.try_row_case(case, str(tmp_path / "again"))["handled"]


def test_quarantined_row_keeps_its_fields_for_fixing(tmp_path):
    rows, _, _ = _quarantine(tmp_path, reliability.EVENTS + "u3, a ,400,1,abc\n", reliability.ITEMS)
    assert rows[0]["row"] == {"user_id": "u3", "item_id": " a ", "timestamp": "400", "clicked": "1", "rating": "abc"}


def test_row_counts_group_by_column(tmp_path):
    bad = "u3,a,x,1,4\nu4,a,y,1,4\nu5,q,1,1,4\n"
    _, counts, examples = _quarantine(tmp_path, reliability.EVENTS + bad, reliability.ITEMS)
    assert counts["events.csv"] == {"rows": 6, "quarantined": 3, "by_column": {"timestamp": 2, "item_id": 1}}
    assert examples == 3


def test_clean_input_quarantines_nothing(tmp_path):
    rows, counts, examples = _quarantine(tmp_path, reliability.EVENTS, reliability.ITEMS)
    assert rows == [] and examples == 3
    assert counts == {"events.csv": {"rows": 3, "quarantined": 0, "by_column": {}},
                      "items.csv": {"rows": 2, "quarantined": 0, "by_column": {}}}


def test_row_counts_file_is_read_from_the_examples_artifact(tmp_path):
    os.makedirs(tmp_path / executor.QUARANTINE_DIR)
    counts = {"events.csv": {"rows": 1, "quarantined": 0, "by_column": {}}}
    (tmp_path / executor.QUARANTINE_DIR / executor.ROW_COUNTS_FILE).write_text(json.dumps(counts))
    assert executor.read_row_counts(str(tmp_path)) == counts
