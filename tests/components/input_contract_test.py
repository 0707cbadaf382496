"""Bad input at the boundary: one clear message naming file, line and column."""

from __future__ import annotations

import os

import pytest

from components.example_gen import input_contract

ITEMS = "item_id,title,description,categories\ni1,Space Rocket,A rocket.,space\ni2,Bread,Oven bread.,cooking|baking\n"
EVENTS = "user_id,item_id,timestamp,clicked,rating\nu1,i1,100,1,5\nu1,i2,200,0,2\n"


def _write(directory, events=EVENTS, items=ITEMS):
    for name, text in ((input_contract.EVENTS_FILE, events), (input_contract.ITEMS_FILE, items)):
        if text is not None:
            with open(os.path.join(directory, name), "w", encoding="utf-8") as handle:
                handle.write(text)
    return str(directory)


def test_valid_input_is_counted(tmp_path):
    assert input_contract.validate_input_dir(_write(tmp_path)) == (2, 2)


def test_categories_are_split(tmp_path):
    items = input_contract.read_items(os.path.join(_write(tmp_path), input_contract.ITEMS_FILE))
    assert items["i2"].categories == ("cooking", "baking")


@pytest.mark.parametrize(("events", "items", "message"), [
    (None, ITEMS, r"events\.csv: input file not found"),
    (EVENTS, None, r"items\.csv: input file not found"),
    ("", ITEMS, r"events\.csv: the file is empty"),
    ("user_id,item_id,timestamp,clicked\nu1,i1,1,1\n", ITEMS,
     r"events\.csv: missing required column\(s\) \['rating'\]"),
    (EVENTS, "item_id,description\ni1,x\n", r"items\.csv: missing required column\(s\) \['title'\]"),
    (EVENTS + "u2,i9,300,1,4\n", ITEMS,
     r"events\.csv, line 4, column 'item_id': item 'i9' is not in the item catalogue"),
    (EVENTS + "u2,i1,soon,1,4\n", ITEMS, r"events\.csv, line 4, column 'timestamp': 'soon' is not int"),
    (EVENTS + "u2,i1,300,1,nan\n", ITEMS, r"events\.csv, line 4, column 'rating': 'nan' is not a finite number"),
    (EVENTS + "u2,i1,300,2,4\n", ITEMS, r"events\.csv, line 4, column 'clicked': 2 is not 0 or 1"),
    (EVENTS + "u2,i1,-5,1,4\n", ITEMS, r"events\.csv, line 4, column 'timestamp': -5 is negative"),
    (EVENTS + ",i1,300,1,4\n", ITEMS, r"events\.csv, line 4, column 'user_id': empty value"),
    (EVENTS + "u2,i1,300,1,4,extra\n", ITEMS, r"events\.csv, line 4: 6 fields, but the header has 5"),
    (EVENTS, ITEMS + "i1,Again,,\n", r"items\.csv, line 4, column 'item_id': item 'i1' already defined on line 2"),
    (EVENTS, "item_id,title\n", r"items\.csv: no items"),
    ("user_id,item_id,timestamp,clicked,rating\n", ITEMS, r"events\.csv: no events"),
])
def test_bad_input_names_file_line_and_column(tmp_path, events, items, message):
    with pytest.raises(input_contract.InputError, match=message):
        input_contract.validate_input_dir(_write(tmp_path, events, items))


def test_invalid_utf8_is_reported(tmp_path):
    _write(tmp_path)
    with open(os.path.join(tmp_path, input_contract.ITEMS_FILE), "wb") as handle:
        handle.write(b"item_id,title\ni1,caf\xe9\n")
    with pytest.raises(input_contract.InputError, match=r"items\.csv: not valid UTF-8"):
        input_contract.validate_input_dir(str(tmp_path))
