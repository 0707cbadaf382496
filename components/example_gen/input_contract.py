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
USERS_FILE = features.USERS_FILE
# A declared feature's values in a row: strings (categorical: one or none) or floats (numeric: one or none).
Values = tuple[str, ...] | tuple[float, ...]


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
    """An item of the catalogue; `attributes`: its declared item features' values (feature name -> Values)."""

    item_id: str
    title: str
    description: str
    categories: tuple[str, ...]
    attributes: dict[str, Values] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class User:
    """A row of users.csv: the user's declared user features' values (feature name -> Values)."""

    user_id: str
    attributes: dict[str, Values]


@dataclasses.dataclass(frozen=True)
class Event:
    """One event: its keys, its label columns' values (ints for binary labels, floats otherwise) and its declared
    context features' values (feature name -> Values)."""

    user_id: str
    item_id: str
    timestamp: int
    labels: dict[str, float]
    context: dict[str, Values] = dataclasses.field(default_factory=dict)


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


def feature_values(path: str, line: int, row: dict[Any, Any], feature: features.Feature) -> Values:
    """A declared feature's values in `row`: an empty field is missing (no values); so is a numeric one of the
    feature's `missing_values`. A number that is not one, or negative under log1p, raises RowError."""
    text = _field(path, line, row, feature.name, required=False)
    if not text:
        return ()
    if feature.type == features.CATEGORICAL:
        return (text,)
    if feature.type == features.MULTI_CATEGORICAL:
        return tuple(dict.fromkeys(part.strip() for part in text.split(feature.separator) if part.strip()))
    value = _number(path, line, row, feature.name, float)
    if value in feature.missing_values:
        return ()
    if feature.normalization == features.LOG1P and value < 0:
        raise RowError(path, line, feature.name, f"{value} is negative (the feature is normalised by log1p)")
    return (float(value),)


def _attributes(path: str, line: int, row: dict[Any, Any], declared: list[features.Feature]) -> dict[str, Values]:
    return {feature.name: feature_values(path, line, row, feature) for feature in declared}


def required_item_columns(require_text: bool, declared: list[features.Feature] = ()) -> tuple[str, ...]:
    keys = features.REQUIRED_ITEM_COLUMNS if require_text else (features.ITEM_ID,)
    return (*keys, *features.raw_columns(features.of_source(declared, features.ITEMS_SOURCE)))


def parse_item(path: str, line: int, row: dict[Any, Any], require_text: bool = True,
               declared: list[features.Feature] = ()) -> Item:
    """An item; with `require_text` (the text tower on) its title must not be empty, otherwise an item may have no
    text at all (its title and description read as empty). `declared`: the declared features (the item ones are
    read)."""
    _whole_row(path, line, row, len(row) - 1)
    categories = _field(path, line, row, features.CATEGORIES, required=False)
    return Item(
        item_id=_field(path, line, row, features.ITEM_ID),
        title=_field(path, line, row, features.TITLE, required=require_text),
        description=_field(path, line, row, features.DESCRIPTION, required=False),
        categories=tuple(c.strip() for c in categories.split(features.CATEGORY_SEPARATOR) if c.strip()),
        attributes=_attributes(path, line, row, features.of_source(declared, features.ITEMS_SOURCE)),
    )


def parse_user(path: str, line: int, row: dict[Any, Any], declared: list[features.Feature]) -> User:
    _whole_row(path, line, row, len(row) - 1)
    return User(_field(path, line, row, features.USER_ID),
                _attributes(path, line, row, features.of_source(declared, features.USERS_SOURCE)))


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
                max_timestamp: int | None = None, declared: list[features.Feature] = ()) -> Event:
    """Raises RowError for a row that breaks the contract; `labels` maps each label column to what its values must
    be (features.BINARY_LABEL, ...); `max_timestamp` (if given) rejects future events; `declared`: the declared
    features (the context ones are read)."""
    _whole_row(path, line, row, len(row) - 1)
    user_id = _field(path, line, row, features.USER_ID)
    item_id = _field(path, line, row, features.ITEM_ID)
    timestamp = _number(path, line, row, features.TIMESTAMP, int)
    if timestamp < 0:
        raise RowError(path, line, features.TIMESTAMP, f"{timestamp} is negative")
    if max_timestamp is not None and timestamp > max_timestamp:
        raise RowError(path, line, features.TIMESTAMP, f"{timestamp} is in the future (after {max_timestamp})")
    values = {column: _label(path, line, row, column, kind) for column, kind in labels.items()}
    return Event(user_id=user_id, item_id=item_id, timestamp=int(timestamp), labels=values,
                 context=_attributes(path, line, row, features.of_source(declared, features.EVENTS_SOURCE)))


def required_event_columns(labels: dict[str, str], declared: list[features.Feature] = ()) -> tuple[str, ...]:
    return (*features.EVENT_KEY_COLUMNS, *labels,
            *features.raw_columns(features.of_source(declared, features.EVENTS_SOURCE)))


def required_user_columns(declared: list[features.Feature]) -> tuple[str, ...]:
    return (features.USER_ID, *features.raw_columns(features.of_source(declared, features.USERS_SOURCE)))


def _screen_table(path: str, required: tuple[str, ...], parse: Any, key: str) -> tuple[dict[str, Any], list[BadRow]]:
    """The readable rows of a table keyed by column `key` (parsed by `parse(path, line, row)`), and the rows
    quarantined instead: unreadable rows and later rows of a key already defined."""
    entries: dict[str, Any] = {}
    first_line: dict[str, int] = {}
    bad: list[BadRow] = []
    for line, row in _rows(path, required):
        try:
            entry = parse(path, line, row)
            name = getattr(entry, key)
            if name in entries:
                noun = key.removesuffix("_id")
                raise RowError(path, line, key, f"{noun} {name!r} already defined on line {first_line[name]}")
        except RowError as error:
            bad.append(BadRow.from_error(error, path, line, row))
            continue
        entries[name] = entry
        first_line[name] = line
    return entries, bad


def screen_items(path: str, require_text: bool = True, declared: list[features.Feature] = ()
                 ) -> tuple[dict[str, Item], list[BadRow]]:
    """The catalogue's items, and the rows quarantined instead: unreadable rows (a malformed declared feature
    among them), items without a title (no text) when `require_text`, and later rows of an item id already
    defined."""
    return _screen_table(path, required_item_columns(require_text, declared),
                         lambda *where: parse_item(*where, require_text, declared), features.ITEM_ID)


def screen_users(path: str, declared: list[features.Feature]) -> tuple[dict[str, User], list[BadRow]]:
    """users.csv's users, and the rows quarantined instead: unreadable rows (a malformed declared feature among
    them) and later rows of a user id already defined."""
    return _screen_table(path, required_user_columns(declared), lambda *where: parse_user(*where, declared),
                         features.USER_ID)


def read_users(path: str, declared: list[features.Feature]) -> dict[str, User]:
    """The readable users of users.csv (quarantined rows left out), or none when no user feature is declared."""
    if not features.of_source(declared, features.USERS_SOURCE):
        return {}
    return screen_users(path, declared)[0]


def read_items(path: str, require_text: bool = True, declared: list[features.Feature] = ()) -> dict[str, Item]:
    """The catalogue's readable items (quarantined rows left out); InputError when none is readable."""
    items, bad = screen_items(path, require_text, declared)
    if not items:
        reason = f"all {len(bad)} rows are quarantined, e.g. {bad[0].describe()}" if bad else \
            "the file has a header but no rows"
        raise InputError(f"{path}: no items ({reason})")
    return items


def screen_events(path: str, labels: dict[str, str] = DEFAULT_LABELS, max_timestamp: int | None = None,
                  declared: list[features.Feature] = ()) -> Iterator[tuple[int, Event] | BadRow]:
    """Yields (line number, event) for every readable row of `path` and a BadRow for every other row; the
    catalogue is not consulted."""
    for line, row in _rows(path, required_event_columns(labels, declared)):
        try:
            yield line, parse_event(path, line, row, labels, max_timestamp, declared)
        except RowError as error:
            yield BadRow.from_error(error, path, line, row)


def read_events(path: str, items: dict[str, Item], labels: dict[str, str] = DEFAULT_LABELS,
                declared: list[features.Feature] = ()) -> Iterator[Event]:
    """Every event of `path`, for code that needs the whole file clean (benchmarks, data preparation): the first
    row the quarantine would take, or an event of an item not in `items`, raises InputError."""
    for entry in screen_events(path, labels, declared=declared):
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
    user_rows: int = 0  # users.csv is read only when a user feature is declared


def _check_file(path: str, required: tuple[str, ...], known: tuple[str, ...]) -> tuple[int, list[str]]:
    with _open(path) as handle:
        records = _records(path, csv.reader(handle, strict=True))
        header = _header(path, records, required)
        rows = sum(1 for _ in records)
    if not rows:
        raise InputError(f"{path}: no rows (the file has a header only)")
    return rows, [column for column in header if column not in known]


def check_input_dir(input_dir: str, labels: dict[str, str] = DEFAULT_LABELS, require_text: bool = True,
                    declared: list[features.Feature] = (), events_files: list[str] | None = None) -> InputFiles:
    """The faults that reject a run, found before any work starts: a file missing, empty, not UTF-8, with broken
    quoting, or a header without the required columns (the event keys, every label column of `labels` and every
    declared feature's column in its file; an item title when `require_text`; users.csv only when a user feature
    is declared). `events_files`: the day files of a window, each checked (default: `input_dir`/events.csv). Row
    faults are left to ExampleGen, which quarantines them."""
    if not os.path.isdir(input_dir):
        raise InputError(f"{input_dir}: input directory not found (it should hold {EVENTS_FILE} and {ITEMS_FILE})")
    required = required_event_columns(labels, declared)
    event_rows, event_extra = 0, []
    for path in events_files or [os.path.join(input_dir, EVENTS_FILE)]:
        rows, event_extra = _check_file(path, required, required)
        event_rows += rows
    item_columns = required_item_columns(require_text, declared)
    item_rows, item_extra = _check_file(os.path.join(input_dir, ITEMS_FILE), item_columns,
                                        (*features.ITEM_COLUMNS, *item_columns))
    ignored = {name: extra for name, extra in ((EVENTS_FILE, event_extra), (ITEMS_FILE, item_extra)) if extra}
    user_rows = 0
    if features.of_source(declared, features.USERS_SOURCE):
        user_columns = required_user_columns(declared)
        user_rows, user_extra = _check_file(os.path.join(input_dir, USERS_FILE), user_columns, user_columns)
        if user_extra:
            ignored[USERS_FILE] = user_extra
    return InputFiles(event_rows, item_rows, ignored, user_rows)
