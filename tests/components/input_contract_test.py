"""The input contract's two kinds of fault: a file fault rejects the run with one message naming the file (and
line); a row fault makes a BadRow naming file, line and column, for the quarantine."""

from __future__ import annotations

import os

import pytest

from benchmarks import reliability
from components.example_gen import input_contract
from models import features

ITEMS = "item_id,title,description,categories\ni1,Space Rocket,A rocket.,space\ni2,Bread,Oven bread.,cooking|baking\n"
EVENTS = "user_id,item_id,timestamp,clicked,rating\nu1,i1,100,1,5\nu1,i2,200,0,2\n"


def _event(user, item, timestamp, clicked, rating):
    return input_contract.Event(user, item, timestamp, {features.CLICKED: clicked, features.RATING: rating})


def _write(directory, events=EVENTS, items=ITEMS):
    for name, text in ((input_contract.EVENTS_FILE, events), (input_contract.ITEMS_FILE, items)):
        if text is not None:
            with open(os.path.join(directory, name), "w", encoding="utf-8") as handle:
                handle.write(text)
    return str(directory)


def test_valid_input_is_counted(tmp_path):
    assert input_contract.check_input_dir(_write(tmp_path)) == input_contract.InputFiles(2, 2, {})


def test_extra_columns_are_accepted_and_reported(tmp_path):
    directory = _write(tmp_path, "user_id,item_id,timestamp,clicked,rating,device\nu1,i1,100,1,5,phone\n",
                       ITEMS.replace("categories\n", "categories,price\n", 1))
    found = input_contract.check_input_dir(directory)
    assert found.ignored_columns == {"events.csv": ["device"], "items.csv": ["price"]}
    assert [event for _, event in input_contract.screen_events(os.path.join(directory, "events.csv"))] == [
        _event("u1", "i1", 100, 1, 5.0)]


def test_categories_are_split(tmp_path):
    items = input_contract.read_items(os.path.join(_write(tmp_path), input_contract.ITEMS_FILE))
    assert items["i2"].categories == ("cooking", "baking")


@pytest.mark.parametrize("case", reliability.FILE_CASES, ids=lambda case: case.name)
def test_file_faults_reject_the_run_naming_the_file(tmp_path, case):
    directory = reliability.write_case(str(tmp_path), case.events, case.items, case.encoding)
    with pytest.raises(input_contract.InputError, match=case.message):
        input_contract.check_input_dir(directory)


def _bad_rows(path):
    return [entry for entry in input_contract.screen_events(path) if isinstance(entry, input_contract.BadRow)]


def test_row_faults_become_bad_rows_and_good_rows_are_kept(tmp_path):
    directory = _write(tmp_path, EVENTS + "u2,i1,soon,1,4\nu3,i2,50,1,3\n")
    entries = list(input_contract.screen_events(os.path.join(directory, "events.csv")))
    assert [entry for entry in entries if not isinstance(entry, input_contract.BadRow)] == [
        (2, _event("u1", "i1", 100, 1, 5.0)), (3, _event("u1", "i2", 200, 0, 2.0)),
        (5, _event("u3", "i2", 50, 1, 3.0))]
    [bad] = _bad_rows(os.path.join(directory, "events.csv"))
    assert bad.describe() == "events.csv, line 4, column 'timestamp': 'soon' is not int"


LABELS = {"clicked": features.BINARY_LABEL, "like": features.BINARY_LABEL, "watch_ratio": features.NUMERIC_LABEL,
          "watch_time": features.NON_NEGATIVE_LABEL}
DECLARED = "user_id,item_id,timestamp,clicked,like,watch_ratio,watch_time,tab\n"


def test_declared_label_columns_are_read_with_their_kind(tmp_path):
    directory = _write(tmp_path, DECLARED + "u1,i1,100,1,0,0.5,12,2\nu1,i2,200,0,1,-1.25,0,3\n")
    assert input_contract.check_input_dir(directory, LABELS).ignored_columns == {"events.csv": ["tab"]}
    events = [event for _, event in input_contract.screen_events(os.path.join(directory, "events.csv"), LABELS)]
    assert events == [
        input_contract.Event("u1", "i1", 100, {"clicked": 1, "like": 0, "watch_ratio": 0.5, "watch_time": 12.0}),
        input_contract.Event("u1", "i2", 200, {"clicked": 0, "like": 1, "watch_ratio": -1.25, "watch_time": 0.0})]
    assert [type(value) for value in events[0].labels.values()] == [int, int, float, float]


@pytest.mark.parametrize(("row", "reason"), [
    ("u1,i1,100,1,2,0.5,12,2", "column 'like': 2 is not 0 or 1"),
    ("u1,i1,100,1,yes,0.5,12,2", "column 'like': 'yes' is not int"),
    ("u1,i1,100,1,0,nan,12,2", "column 'watch_ratio': 'nan' is not a finite number"),
    ("u1,i1,100,1,0,0.5,-3,2", "column 'watch_time': -3.0 is negative"),
    ("u1,i1,100,1,,0.5,12,2", "column 'like': empty value"),
])
def test_a_bad_declared_label_quarantines_the_row_naming_its_column(tmp_path, row, reason):
    path = os.path.join(_write(tmp_path, DECLARED + row + "\n"), "events.csv")
    [bad] = list(input_contract.screen_events(path, LABELS))
    assert isinstance(bad, input_contract.BadRow)
    assert bad.describe().startswith(f"events.csv, line 2, {reason}"), bad.describe()


def test_a_declared_label_absent_from_the_file_rejects_the_run(tmp_path):
    directory = _write(tmp_path)  # clicked and rating only
    with pytest.raises(input_contract.InputError, match=r"events.csv: missing required column\(s\) \['like'"):
        input_contract.check_input_dir(directory, LABELS)


def test_future_events_are_bad_rows_only_past_the_limit(tmp_path):
    path = os.path.join(_write(tmp_path, EVENTS + "u2,i1,300,1,4\n"), "events.csv")
    assert [bad.reason for bad in _bad_rows(path)] == []
    [bad] = [entry for entry in input_contract.screen_events(path, max_timestamp=250)
             if isinstance(entry, input_contract.BadRow)]
    assert (bad.line, bad.column, bad.reason) == (4, "timestamp", "300 is in the future (after 250)")


def test_items_without_a_title_or_repeated_are_quarantined(tmp_path):
    directory = _write(tmp_path, items=ITEMS + "i3,,only a description,x\ni1,Again,,\n")
    items, bad = input_contract.screen_items(os.path.join(directory, "items.csv"))
    assert sorted(items) == ["i1", "i2"] and items["i1"].title == "Space Rocket"
    assert [row.describe() for row in bad] == ["items.csv, line 4, column 'title': empty value",
                                               "items.csv, line 5, column 'item_id': item 'i1' already defined on "
                                               "line 2"]


def test_a_catalogue_without_usable_items_is_a_file_fault(tmp_path):
    directory = _write(tmp_path, items="item_id,title\ni1,\ni2,\n")
    with pytest.raises(input_contract.InputError, match=r"items\.csv: no items \(all 2 rows are quarantined, e\.g\. "
                                                        r"items\.csv, line 2, column 'title': empty value\)"):
        input_contract.read_items(os.path.join(directory, "items.csv"))
