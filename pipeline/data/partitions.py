"""Daily partitions from one events.csv: `events/YYYY-MM-DD.csv`, one file per day, beside the item and user tables.

What a log shipped as one file needs before `data.window_days` can read it, and how the tests and the continuous
training benchmark lay out their days.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import os
import shutil

from components.example_gen import input_contract, window
from models import features


def event_day(timestamp: int, utc_offset_hours: float = 0.0) -> str:
    """The calendar day (YYYY-MM-DD) of Unix seconds at a UTC offset."""
    moment = datetime.datetime.fromtimestamp(timestamp + utc_offset_hours * 3600, datetime.UTC)
    return moment.date().isoformat()


def write_daily(input_dir: str, output_dir: str, utc_offset_hours: float = 0.0) -> list[str]:
    """Writes the events of `input_dir`/events.csv to `output_dir`/events/DAY.csv by each event's day at the
    offset, each file with the log's header, and copies items.csv and users.csv (if any); returns the days, in
    order. A row whose timestamp is not a whole number stops it, naming the line: a partition cannot place it."""
    events_dir = os.path.join(output_dir, window.EVENTS_DIR)
    os.makedirs(events_dir, exist_ok=True)
    source = os.path.join(input_dir, input_contract.EVENTS_FILE)
    days: set[str] = set()
    with contextlib.ExitStack() as files, open(source, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        if features.TIMESTAMP not in header:
            raise input_contract.InputError(f"{source}: no '{features.TIMESTAMP}' column to partition by")
        column = header.index(features.TIMESTAMP)
        writers: dict[str, csv.writer] = {}
        for row in reader:
            try:
                day = event_day(int(row[column]), utc_offset_hours)
            except (ValueError, IndexError, OverflowError):
                raise input_contract.InputError(
                    f"{source}, line {reader.line_num}, column '{features.TIMESTAMP}': not a Unix time in seconds, "
                    f"so it has no day") from None
            if day not in writers:
                out = files.enter_context(open(window.day_file(output_dir, day), "w", newline="", encoding="utf-8"))
                writers[day] = csv.writer(out)
                writers[day].writerow(header)
            writers[day].writerow(row)
            days.add(day)
    for name in (input_contract.ITEMS_FILE, input_contract.USERS_FILE):
        if os.path.exists(os.path.join(input_dir, name)):
            shutil.copyfile(os.path.join(input_dir, name), os.path.join(output_dir, name))
    return sorted(days)
