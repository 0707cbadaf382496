"""The CSV input contract: parsing and validating events and items, with errors that name file, row and column.

Both the command line (before any work starts) and the ExampleGen executor parse rows with these functions, so
a user's mistake is reported the same way wherever it is found.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Iterator

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


def _rows(path: str, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yields (line number, row) and checks the header; line numbers count the header as line 1."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: input file not found")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            if not header:
                raise InputError(f"{path}: the file is empty (expected a header with columns {list(required)})")
            missing = [column for column in required if column not in header]
            if missing:
                raise InputError(f"{path}: missing required column(s) {missing}; the header has {header}")
            for row in reader:
                if None in row:
                    raise InputError(f"{path}, line {reader.line_num}: {len(header) + len(row[None])} fields, "
                                     f"but the header has {len(header)}")
                yield reader.line_num, row
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not valid UTF-8 ({error.reason} at byte {error.start})") from error
    except csv.Error as error:
        raise InputError(f"{path}: unparsable CSV ({error})") from error


def _field(path: str, line: int, row: dict[str, str | None], column: str, required: bool = True) -> str:
    value = (row.get(column) or "").strip()
    if required and not value:
        raise InputError(f"{path}, line {line}, column '{column}': empty value")
    return value


def _number(path: str, line: int, row: dict[str, str | None], column: str, kind: type) -> float:
    text = _field(path, line, row, column)
    try:
        value = kind(text)
    except ValueError as error:
        raise InputError(f"{path}, line {line}, column '{column}': {text!r} is not {kind.__name__}") from error
    if not math.isfinite(value):
        raise InputError(f"{path}, line {line}, column '{column}': {text!r} is not a finite number")
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
