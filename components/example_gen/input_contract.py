"""The CSV input contract: parsing and validating events and items, with errors that name file, row and column.

Both the command line (before any work starts) and the ExampleGen executor parse rows with these functions, so
a user's mistake is reported the same way wherever it is found.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
from collections.abc import Iterator
from typing import Any

from models import features

EVENTS_FILE = "events.csv"
ITEMS_FILE = "items.csv"


class InputError(ValueError):
    """A user's input breaks the data contract. The message names the file, row and column."""


@dataclasses.dataclass(frozen=True)
class Item:
    item_id: str
    title: str
    description: str
    categories: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Event:
    user_id: str
    item_id: str
    timestamp: int
    clicked: int
    rating: float


_INT = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: int() would also take "1_000" and other scripts' digits
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_NON_FINITE = re.compile(r"[+-]?(nan|inf|infinity)", re.IGNORECASE)
# What tf.Example's Int64List and FloatList hold: beyond them a value would fail or turn into inf downstream.
_INT_RANGE = (-(2**63), 2**63 - 1)
_FLOAT_MAX = 3.4028234663852886e38  # float32
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, as surrogateescape decodes them


def _show(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def _utf8_fault(path: str) -> tuple[int, int]:
    """(line, position in the line) of the first byte that is not UTF-8, lines counted as the CSV reader does."""
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        for line, text in enumerate(handle, 1):
            match = _UNDECODABLE.search(text)
            if match:
                return line, match.start() + 1
    return 0, 0


def _records(path: str, reader: Any) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of each non-blank record; undecodable bytes and broken quoting are InputErrors."""
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as error:
            fault_line, position = _utf8_fault(path)
            raise InputError(f"{path}: not valid UTF-8 at line {fault_line}, character {position} "
                             f"({error.reason})") from error
        except csv.Error as error:
            raise InputError(f"{path}, line {line}: unparsable CSV ({error})") from error
        if fields:
            yield line, fields


def _rows(path: str, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yields (line number, row) and checks the header. A row's line is the line its record starts on (a quoted
    field may span lines); the header is line 1. Blank lines are skipped; a UTF-8 byte order mark is allowed."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: input file not found")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        records = _records(path, csv.reader(handle, strict=True))
        header_line, header = next(records, (0, []))
        if not header:
            raise InputError(f"{path}: the file is empty (expected a header with columns {list(required)})")
        missing = [column for column in required if column not in header]
        if missing:
            raise InputError(f"{path}: missing required column(s) {missing}; the header (line {header_line}) has "
                             f"{header}")
        duplicates = sorted({column for column in header if header.count(column) > 1})
        if duplicates:
            raise InputError(f"{path}, line {header_line}: duplicate column(s) {duplicates} in the header")
        for line, fields in records:
            if len(fields) > len(header):
                raise InputError(f"{path}, line {line}: {len(fields)} fields, but the header has {len(header)}")
            yield line, dict(zip(header, fields, strict=False))  # a short row's missing columns read as empty


def _field(path: str, line: int, row: dict[str, str | None], column: str, required: bool = True) -> str:
    value = (row.get(column) or "").strip()
    if required and not value:
        raise InputError(f"{path}, line {line}, column '{column}': empty value")
    return value


def _number(path: str, line: int, row: dict[str, str | None], column: str, kind: type) -> float:
    """An int or float in plain decimal notation, in the range tf.Example stores (int64, float32)."""
    text = _field(path, line, row, column)
    where = f"{path}, line {line}, column '{column}'"
    if kind is float and _NON_FINITE.fullmatch(text):
        raise InputError(f"{where}: {_show(text)} is not a finite number")
    if not (_INT if kind is int else _FLOAT).fullmatch(text):
        raise InputError(f"{where}: {_show(text)} is not {kind.__name__}")
    try:
        value = kind(text)
    except ValueError:  # an integer of more digits than Python converts
        value = math.inf
    if kind is int and not (value != math.inf and _INT_RANGE[0] <= value <= _INT_RANGE[1]):
        raise InputError(f"{where}: {_show(text)} is out of the 64-bit integer range")
    if kind is float and not (math.isfinite(value) and abs(value) <= _FLOAT_MAX):
        raise InputError(f"{where}: {_show(text)} is not a finite number (float32)")
    return value


def parse_item(path: str, line: int, row: dict[str, str | None]) -> Item:
    categories = _field(path, line, row, features.CATEGORIES, required=False)
    return Item(
        item_id=_field(path, line, row, features.ITEM_ID),
        title=_field(path, line, row, features.TITLE),
        description=_field(path, line, row, features.DESCRIPTION, required=False),
        categories=tuple(c.strip() for c in categories.split(features.CATEGORY_SEPARATOR) if c.strip()),
    )


def parse_event(path: str, line: int, row: dict[str, str | None]) -> Event:
    clicked = _number(path, line, row, features.CLICKED, int)
    if clicked not in (0, 1):
        raise InputError(f"{path}, line {line}, column '{features.CLICKED}': {clicked} is not 0 or 1")
    timestamp = _number(path, line, row, features.TIMESTAMP, int)
    if timestamp < 0:
        raise InputError(f"{path}, line {line}, column '{features.TIMESTAMP}': {timestamp} is negative")
    return Event(
        user_id=_field(path, line, row, features.USER_ID),
        item_id=_field(path, line, row, features.ITEM_ID),
        timestamp=int(timestamp),
        clicked=int(clicked),
        rating=float(_number(path, line, row, features.RATING, float)),
    )


def read_items(path: str) -> dict[str, Item]:
    items: dict[str, Item] = {}
    first_line: dict[str, int] = {}
    for line, row in _rows(path, features.REQUIRED_ITEM_COLUMNS):
        item = parse_item(path, line, row)
        if item.item_id in items:
            raise InputError(f"{path}, line {line}, column '{features.ITEM_ID}': item {item.item_id!r} "
                             f"already defined on line {first_line[item.item_id]}")
        items[item.item_id] = item
        first_line[item.item_id] = line
    if not items:
        raise InputError(f"{path}: no items (the file has a header but no rows)")
    return items


def iter_events(path: str) -> Iterator[tuple[int, Event]]:
    """Yields (line number, event) for every row of `path`; the catalogue is not consulted."""
    for line, row in _rows(path, features.REQUIRED_EVENT_COLUMNS):
        yield line, parse_event(path, line, row)


def read_events(path: str, item_ids: set[str] | dict[str, Item]) -> Iterator[Event]:
    """Yields the events of `path`, checking that each names an item of the catalogue."""
    count = 0
    for line, event in iter_events(path):
        if event.item_id not in item_ids:
            raise InputError(f"{path}, line {line}, column '{features.ITEM_ID}': item {event.item_id!r} is not "
                             f"in the item catalogue")
        count += 1
        yield event
    if not count:
        raise InputError(f"{path}: no events (the file has a header but no rows)")


def validate_input_dir(input_dir: str) -> tuple[int, int]:
    """Checks both files of `input_dir` completely; returns (events, items). Raises InputError on the first fault."""
    items = read_items(os.path.join(input_dir, ITEMS_FILE))
    events = sum(1 for _ in read_events(os.path.join(input_dir, EVENTS_FILE), items))
    return events, len(items)
