"""The CSV input contract: parsing and screening events and items, with errors that name file, row and column.

Faults of a whole file (missing, empty, not UTF-8, broken quoting, a header without the required columns) reject
the run: InputError. Faults of one row (an unparsable number, a NaN label, an empty required field, a negative
or future timestamp, a duplicate) quarantine that row: a BadRow with the reason, written to a side file by
ExampleGen and counted in the run summary. The command line (before any work starts) and the ExampleGen
executor share these functions, so a mistake is reported the same way wherever it is found.
"""

from __future__ import annotations

import csv
import dataclasses
import json
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


class RowError(InputError):
    """One row breaks the contract; the rest of the file may still be read (the row is quarantined)."""

    def __init__(self, path: str, line: int, column: str | None, reason: str):
        where = f"{path}, line {line}" + (f", column '{column}'" if column else "")
        super().__init__(f"{where}: {reason}")
        self.column = column
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class BadRow:
    """A quarantined row: its file (name only), line, the column at fault (None for the whole row), the reason,
    and the row's fields as read, so that it can be fixed and fed again."""

    file: str
    line: int
    column: str | None
    reason: str
    row: dict[str, str]

    @classmethod
    def from_error(cls, error: RowError, path: str, line: int, row: dict[str, Any]) -> BadRow:
        return cls(os.path.basename(path), line, error.column, error.reason, _printable(row))

    def describe(self) -> str:
        return f"{self.file}, line {self.line}" + (f", column '{self.column}'" if self.column else "") + \
            f": {self.reason}"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, sort_keys=True)


def _printable(row: dict[Any, Any]) -> dict[str, str]:
    """The row's fields as strings; extra fields beyond the header are kept under "_extra"."""
    return {("_extra" if key is None else str(key)): (", ".join(value) if isinstance(value, list) else str(value))
            for key, value in row.items()}


@dataclasses.dataclass(frozen=True)
class Item:
    item_id: str
    title: str
    description: str
    categories: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Event:
    """One event: its keys and its label columns' values (ints for binary labels, floats otherwise)."""

    user_id: str
    item_id: str
    timestamp: int
    labels: dict[str, float]


# The label columns of the default tasks (click and rating): column -> what its values must be.
DEFAULT_LABELS = {features.CLICKED: features.BINARY_LABEL, features.RATING: features.NUMERIC_LABEL}


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


def _delimiter_hint(header: list[str]) -> str:
    if len(header) == 1:
        for delimiter, name in ((";", "';'"), ("\t", "tab"), ("|", "'|'")):
            if delimiter in header[0]:
                return f" (the header looks {name}-separated; the files must be comma-separated)"
    return ""


def _header(path: str, records: Iterator[tuple[int, list[str]]], required: tuple[str, ...]) -> list[str]:
    """Reads and checks the header: present, with every required column, no column twice."""
    header_line, header = next(records, (0, []))
    if not header:
        raise InputError(f"{path}: the file is empty (expected a header with columns {list(required)})")
    missing = [column for column in required if column not in header]
    if missing:
        raise InputError(f"{path}: missing required column(s) {missing}; the header (line {header_line}) has "
                         f"{header}{_delimiter_hint(header)}")
    duplicates = sorted({column for column in header if header.count(column) > 1})
    if duplicates:
        raise InputError(f"{path}, line {header_line}: duplicate column(s) {duplicates} in the header")
    return header


def _open(path: str) -> Any:
    if not os.path.isfile(path):
        raise InputError(f"{path}: input file not found")
    return open(path, newline="", encoding="utf-8-sig")


def _rows(path: str, required: tuple[str, ...]) -> Iterator[tuple[int, dict[Any, Any]]]:
    """Yields (line number, row) after checking the header. A row's line is the line its record starts on (a
    quoted field may span lines); the header is line 1. Blank lines are skipped; a UTF-8 byte order mark is
    allowed. A short row's missing columns read as empty; a long row's extra fields are a list under key None."""
    with _open(path) as handle:
        records = _records(path, csv.reader(handle, strict=True))
        header = _header(path, records, required)
        for line, fields in records:
            row: dict[Any, Any] = dict(zip(header, fields, strict=False))
            if len(fields) > len(header):
                row[None] = fields[len(header):]
            yield line, row


def _field(path: str, line: int, row: dict[Any, Any], column: str, required: bool = True) -> str:
    value = (row.get(column) or "").strip()
    if required and not value:
        raise RowError(path, line, column, "empty value")
    return value


def _number(path: str, line: int, row: dict[Any, Any], column: str, kind: type) -> float:
    """An int or float in plain decimal notation, in the range tf.Example stores (int64, float32)."""
    text = _field(path, line, row, column)
    if kind is float and _NON_FINITE.fullmatch(text):
        raise RowError(path, line, column, f"{_show(text)} is not a finite number")
    if not (_INT if kind is int else _FLOAT).fullmatch(text):
        raise RowError(path, line, column, f"{_show(text)} is not {kind.__name__}")
    try:
        value = kind(text)
    except ValueError:  # an integer of more digits than Python converts
        value = math.inf
    if kind is int and not (value != math.inf and _INT_RANGE[0] <= value <= _INT_RANGE[1]):
        raise RowError(path, line, column, f"{_show(text)} is out of the 64-bit integer range")
    if kind is float and not (math.isfinite(value) and abs(value) <= _FLOAT_MAX):
        raise RowError(path, line, column, f"{_show(text)} is not a finite number (float32)")
    return value


def _whole_row(path: str, line: int, row: dict[Any, Any], header_size: int) -> None:
    if None in row:
        raise RowError(path, line, None, f"{header_size + len(row[None])} fields, but the header has {header_size}")


def required_item_columns(require_text: bool) -> tuple[str, ...]:
    return features.REQUIRED_ITEM_COLUMNS if require_text else (features.ITEM_ID,)


def parse_item(path: str, line: int, row: dict[Any, Any], require_text: bool = True) -> Item:
    """An item; with `require_text` (the text tower on) its title must not be empty, otherwise an item may have no
    text at all (its title and description read as empty)."""
    _whole_row(path, line, row, len(row) - 1)
    categories = _field(path, line, row, features.CATEGORIES, required=False)
    return Item(
        item_id=_field(path, line, row, features.ITEM_ID),
        title=_field(path, line, row, features.TITLE, required=require_text),
        description=_field(path, line, row, features.DESCRIPTION, required=False),
        categories=tuple(c.strip() for c in categories.split(features.CATEGORY_SEPARATOR) if c.strip()),
    )


def _label(path: str, line: int, row: dict[Any, Any], column: str, kind: str) -> float:
    if kind == features.BINARY_LABEL:
        value = _number(path, line, row, column, int)
        if value not in (0, 1):
            raise RowError(path, line, column, f"{value} is not 0 or 1")
        return int(value)
    value = _number(path, line, row, column, float)
    if kind == features.NON_NEGATIVE_LABEL and value < 0:
        raise RowError(path, line, column, f"{value} is negative (a retrieval weight or a log1p label)")
    return float(value)


def parse_event(path: str, line: int, row: dict[Any, Any], labels: dict[str, str] = DEFAULT_LABELS,
                max_timestamp: int | None = None) -> Event:
    """Raises RowError for a row that breaks the contract; `labels` maps each label column to what its values must
    be (features.BINARY_LABEL, ...); `max_timestamp` (if given) rejects future events."""
    _whole_row(path, line, row, len(row) - 1)
    user_id = _field(path, line, row, features.USER_ID)
    item_id = _field(path, line, row, features.ITEM_ID)
    timestamp = _number(path, line, row, features.TIMESTAMP, int)
    if timestamp < 0:
        raise RowError(path, line, features.TIMESTAMP, f"{timestamp} is negative")
    if max_timestamp is not None and timestamp > max_timestamp:
        raise RowError(path, line, features.TIMESTAMP, f"{timestamp} is in the future (after {max_timestamp})")
    values = {column: _label(path, line, row, column, kind) for column, kind in labels.items()}
    return Event(user_id=user_id, item_id=item_id, timestamp=int(timestamp), labels=values)


def required_event_columns(labels: dict[str, str]) -> tuple[str, ...]:
    return (*features.EVENT_KEY_COLUMNS, *labels)


def screen_items(path: str, require_text: bool = True) -> tuple[dict[str, Item], list[BadRow]]:
    """The catalogue's items, and the rows quarantined instead: unreadable rows, items without a title (no
    text) when `require_text`, and later rows of an item id already defined."""
    items: dict[str, Item] = {}
    first_line: dict[str, int] = {}
    bad: list[BadRow] = []
    for line, row in _rows(path, required_item_columns(require_text)):
        try:
            item = parse_item(path, line, row, require_text)
            if item.item_id in items:
                raise RowError(path, line, features.ITEM_ID,
                               f"item {item.item_id!r} already defined on line {first_line[item.item_id]}")
        except RowError as error:
            bad.append(BadRow.from_error(error, path, line, row))
            continue
        items[item.item_id] = item
        first_line[item.item_id] = line
    return items, bad


def read_items(path: str, require_text: bool = True) -> dict[str, Item]:
    """The catalogue's readable items (quarantined rows left out); InputError when none is readable."""
    items, bad = screen_items(path, require_text)
    if not items:
        reason = f"all {len(bad)} rows are quarantined, e.g. {bad[0].describe()}" if bad else \
            "the file has a header but no rows"
        raise InputError(f"{path}: no items ({reason})")
    return items


def screen_events(path: str, labels: dict[str, str] = DEFAULT_LABELS, max_timestamp: int | None = None
                  ) -> Iterator[tuple[int, Event] | BadRow]:
    """Yields (line number, event) for every readable row of `path` and a BadRow for every other row; the
    catalogue is not consulted."""
    for line, row in _rows(path, required_event_columns(labels)):
        try:
            yield line, parse_event(path, line, row, labels, max_timestamp)
        except RowError as error:
            yield BadRow.from_error(error, path, line, row)


def read_events(path: str, items: dict[str, Item], labels: dict[str, str] = DEFAULT_LABELS) -> Iterator[Event]:
    """Every event of `path`, for code that needs the whole file clean (benchmarks, data preparation): the first
    row the quarantine would take, or an event of an item not in `items`, raises InputError."""
    for entry in screen_events(path, labels):
        if isinstance(entry, BadRow):
            raise InputError(f"{os.path.join(os.path.dirname(path), entry.describe())}")
        line, event = entry
        if event.item_id not in items:
            raise InputError(f"{path}, line {line}, column '{features.ITEM_ID}': item {event.item_id!r} is not in "
                             f"the item catalogue")
        yield event


@dataclasses.dataclass(frozen=True)
class InputFiles:
    """What a file-level check of the input found: row counts and the columns mtrec does not read."""

    event_rows: int
    item_rows: int
    ignored_columns: dict[str, list[str]]


def _check_file(path: str, required: tuple[str, ...], known: tuple[str, ...]) -> tuple[int, list[str]]:
    with _open(path) as handle:
        records = _records(path, csv.reader(handle, strict=True))
        header = _header(path, records, required)
        rows = sum(1 for _ in records)
    if not rows:
        raise InputError(f"{path}: no rows (the file has a header only)")
    return rows, [column for column in header if column not in known]


def check_input_dir(input_dir: str, labels: dict[str, str] = DEFAULT_LABELS, require_text: bool = True
                    ) -> InputFiles:
    """The faults that reject a run, found before any work starts: a file missing, empty, not UTF-8, with broken
    quoting, or a header without the required columns (the event keys and every label column of `labels`; an
    item title when `require_text`). Row faults are left to ExampleGen, which quarantines them."""
    if not os.path.isdir(input_dir):
        raise InputError(f"{input_dir}: input directory not found (it should hold {EVENTS_FILE} and {ITEMS_FILE})")
    required = required_event_columns(labels)
    event_rows, event_extra = _check_file(os.path.join(input_dir, EVENTS_FILE), required, required)
    item_rows, item_extra = _check_file(os.path.join(input_dir, ITEMS_FILE), required_item_columns(require_text),
                                        features.ITEM_COLUMNS)
    ignored = {name: extra for name, extra in ((EVENTS_FILE, event_extra), (ITEMS_FILE, item_extra)) if extra}
    return InputFiles(event_rows, item_rows, ignored)
