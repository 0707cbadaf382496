"""Daily partitions of the events: which days a run reads (its window), and whether their files agree.

The events of a partitioned input live in `events/YYYY-MM-DD.csv`, one file per day. A window is the latest N
days up to a given day, or a named list of days. TFX's own span resolution picks one span per ExampleGen run; the
examples need the whole window at once (each event's history reaches back into earlier days, and the time split
holds out each user's latest events), so the window is resolved here, before ExampleGen reads it, and recorded as
the Examples artifact's span (the window's last day, as TFX's date specs count it: days since 1970-01-01).
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import datetime
import json
import os
import re
from typing import Any

from components.example_gen.input_contract import EVENTS_FILE, InputError

EVENTS_DIR = "events"
_DAY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.csv$")


def is_day(text: str) -> bool:
    """Whether `text` is a calendar date written YYYY-MM-DD."""
    try:
        return datetime.date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def _gfile() -> Any:
    """tf.io.gfile (partitions may live on gs://), imported on first use: the CLI imports this module before it
    hides TensorFlow's native start-up lines."""
    import tensorflow as tf

    return tf.io.gfile


def _date(day: str) -> datetime.date:
    return datetime.date.fromisoformat(day)


@dataclasses.dataclass(frozen=True)
class WindowConfig:
    """The window a run asks for (pipeline.config.Data): `window_days` latest days up to `day` (default: the latest
    day there is), or the days of `span`; `missing_days`: "refuse" or "skip"."""

    window_days: int | None = None
    span: tuple[str, ...] | None = None
    day: str | None = None
    missing_days: str = "refuse"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> WindowConfig | None:
        values = json.loads(text) if text else None
        if not values:
            return None
        return cls(**{**values, "span": tuple(values["span"]) if values.get("span") is not None else None})


@dataclasses.dataclass(frozen=True)
class Window:
    """The days a run reads, ascending, and the days of the window that had no file and were skipped."""

    days: tuple[str, ...]
    skipped: tuple[str, ...] = ()

    @property
    def span(self) -> int:
        """The window's last day as days since 1970-01-01 (TFX's span of a {YYYY}-{MM}-{DD} input)."""
        return (_date(self.days[-1]) - datetime.date(1970, 1, 1)).days

    def describe(self) -> str:
        first, last = self.days[0], self.days[-1]
        text = first if first == last else f"{first}..{last} ({len(self.days)} days)"
        return text + (f", skipped missing {', '.join(self.skipped)}" if self.skipped else "")

    def files(self, input_base: str) -> list[str]:
        return [day_file(input_base, day) for day in self.days]

    def to_json(self) -> str:
        return json.dumps({"days": list(self.days), "skipped": list(self.skipped)})

    @classmethod
    def from_json(cls, text: str) -> Window:
        values = json.loads(text)
        return cls(tuple(values["days"]), tuple(values["skipped"]))


def is_events_file(name: str) -> bool:
    """Whether a quarantined row's file (input_contract.BadRow.file) is the events table: events.csv or a day
    file of a window."""
    return name == EVENTS_FILE or name.startswith(f"{EVENTS_DIR}/")


def day_file(input_base: str, day: str) -> str:
    return os.path.join(input_base, EVENTS_DIR, f"{day}.csv")


def available_days(input_base: str) -> list[str]:
    """The days with a file in `input_base`/events, ascending. A file there that is not named by a day is an
    error: it would otherwise be left out without a word."""
    directory = os.path.join(input_base, EVENTS_DIR)
    if not _gfile().isdir(directory):
        raise InputError(f"{directory}: no daily partitions (data.window_days and data.span read "
                         f"{EVENTS_DIR}/YYYY-MM-DD.csv files)")
    days, strangers = [], []
    for name in sorted(_gfile().listdir(directory)):
        match = _DAY_FILE.match(name)
        if match and is_day(match[1]):
            days.append(match[1])
        else:
            strangers.append(name)
    if strangers:
        raise InputError(f"{directory}: {', '.join(strangers)}: not a day's file (expected YYYY-MM-DD.csv)")
    if not days:
        raise InputError(f"{directory}: no day files (expected YYYY-MM-DD.csv)")
    return days


def resolve(input_base: str, config: WindowConfig) -> Window:
    """The window `config` asks for, over the days `input_base` has. A day of the window without a file is
    refused (InputError naming it) or skipped, as `config.missing_days` says; a window with no day left is
    refused."""
    present = available_days(input_base)
    if config.span is not None:
        wanted = sorted(set(config.span))
    else:
        last = config.day or present[-1]
        wanted = [(_date(last) - datetime.timedelta(days=back)).isoformat()
                  for back in reversed(range(config.window_days))]
    missing = [day for day in wanted if day not in set(present)]
    if missing and config.missing_days == "refuse":
        raise InputError(f"{os.path.join(input_base, EVENTS_DIR)}: the window {wanted[0]}..{wanted[-1]} has no file "
                         f"for {', '.join(missing)} (set data.missing_days: skip to read the days there are)")
    days = tuple(day for day in wanted if day not in missing)
    if not days:
        raise InputError(f"{os.path.join(input_base, EVENTS_DIR)}: no file for any day of the window "
                         f"{wanted[0]}..{wanted[-1]} (days there: {present[0]}..{present[-1]})")
    return Window(days, tuple(missing))


def _header(path: str) -> list[str]:
    with _gfile().GFile(path) as handle:
        return next(csv.reader([handle.readline()]), [])


def check_headers(files: list[str]) -> None:
    """Every day file of a window must have the first one's header: a column added, dropped or renamed on one day
    would otherwise change what its rows mean without a word. Names the day and the difference."""
    expected = _header(files[0])
    for path in files[1:]:
        header = _header(path)
        if header != expected:
            added = [column for column in header if column not in expected]
            dropped = [column for column in expected if column not in header]
            difference = "; ".join(part for part in (
                f"columns not in {os.path.basename(files[0])}: {added}" if added else "",
                f"missing columns: {dropped}" if dropped else "",
                "the same columns in another order" if not added and not dropped else "") if part)
            raise InputError(f"{path}: header differs from {files[0]}'s ({difference})")


def line_counts(files: list[str]) -> list[int]:
    """Physical lines per file (the header included), as the CSV reader numbers them."""
    counts = []
    for path in files:
        with _gfile().GFile(path, "rb") as handle:
            lines, last = 0, b"\n"
            while chunk := handle.read(1 << 22):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
            counts.append(lines + (last != b"\n"))
    return counts


@dataclasses.dataclass(frozen=True)
class LineMap:
    """The window's day files read as one events table: a line of file k is line offsets[k] + line there. Maps
    such a global line back to (day file, its own line), so a quarantined row names the day it came from."""

    names: tuple[str, ...]  # the day files, relative to the input base: events/DAY.csv
    offsets: tuple[int, ...]

    @classmethod
    def of(cls, files: list[str]) -> LineMap:
        offsets, total = [], 0
        for count in line_counts(files):
            offsets.append(total)
            total += count
        return cls(tuple(f"{EVENTS_DIR}/{os.path.basename(path)}" for path in files), tuple(offsets))

    def locate(self, line: int) -> tuple[str, int]:
        index = bisect.bisect_right(self.offsets, line - 1) - 1
        return self.names[index], line - self.offsets[index]

