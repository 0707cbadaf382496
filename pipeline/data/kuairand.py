"""Converts KuaiRand-Pure (Kuaishou short-video logs, Gao et al., CIKM 2022) into the CSV contract.

Each exposure of the standard logs becomes an event with its feedback signals as label columns (click, long view,
like, follow, comment, forward, hate, profile entry) and the watch ratio (play time over video duration) derived
beside them; `tab` stays as a context column. The video table becomes the catalogue: no text, the tags as
categories, the other attributes as further columns. The user table is copied as `users.csv`.

An exposure whose video has no duration has no watch ratio: it is written, with the reason, to `unconverted.csv`
beside the output rather than dropped silently, and counted in what `convert` returns.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import os
import shutil

from components.example_gen import input_contract
from models import features
from models.features import Feature

LOG_PATTERN = "log_*.csv"
VIDEOS_FILE = "video_features_basic_pure.csv"
USERS_SOURCE_FILE = "user_features_pure.csv"
USERS_FILE = input_contract.USERS_FILE
UNCONVERTED_FILE = "unconverted.csv"

# The log's feedback signals, kept under their own names; all are 0/1.
SIGNALS = ("is_click", "long_view", "is_like", "is_follow", "is_comment", "is_forward", "is_hate",
           "is_profile_enter")
WATCH_RATIO = "watch_ratio"  # play_time_ms / duration_ms
CONTEXT = ("tab",)
_LOG_COLUMNS = ("user_id", "video_id", "time_ms", *SIGNALS, "play_time_ms", "duration_ms", *CONTEXT)
EVENT_COLUMNS = (*features.EVENT_KEY_COLUMNS, *SIGNALS, WATCH_RATIO, "play_time_ms", *CONTEXT)
# Video attributes written beside the tags; the `tag` column (comma-separated ids) becomes the categories.
VIDEO_ATTRIBUTES = ("author_id", "video_type", "upload_type", "music_id", "music_type", "video_duration")
ITEM_COLUMNS = (features.ITEM_ID, features.CATEGORIES, *VIDEO_ATTRIBUTES)


# The user table's categorical columns (its ranges and one-hot codes; the raw counts are left to their ranges).
USER_CATEGORICAL = ("user_active_degree", "is_lowactive_period", "is_live_streamer", "is_video_author",
                    "follow_user_num_range", "fans_user_num_range", "friend_user_num_range", "register_days_range",
                    *(f"onehot_feat{i}" for i in range(18)))
HASH_BUCKETS = 4096  # for author and music ids: thousands of values, most seen a few times
UTC_OFFSET_HOURS = 8.0  # Kuaishou's logs are in Beijing time
MISSING = -124.0  # KuaiRand's code for an unknown value


def declared_features() -> list[Feature]:
    """KuaiRand's declared features: the tab and the hour and weekday of each exposure (context), the user table's
    categorical columns, and the video's author, music, type, upload type and duration."""
    context = [Feature("tab", features.EVENTS_SOURCE, features.CATEGORICAL),
               *(Feature(part, features.EVENTS_SOURCE, features.TIMESTAMP_PART, part=part,
                         utc_offset_hours=UTC_OFFSET_HOURS) for part in features.TIMESTAMP_PARTS)]
    users = [Feature(name, features.USERS_SOURCE, features.CATEGORICAL) for name in USER_CATEGORICAL]
    items = [Feature("author_id", features.ITEMS_SOURCE, features.CATEGORICAL, hash_buckets=HASH_BUCKETS),
             Feature("music_id", features.ITEMS_SOURCE, features.CATEGORICAL, hash_buckets=HASH_BUCKETS),
             *(Feature(name, features.ITEMS_SOURCE, features.CATEGORICAL)
               for name in ("video_type", "upload_type", "music_type")),
             Feature("video_duration", features.ITEMS_SOURCE, features.NUMERIC, normalization=features.LOG1P,
                     missing_values=[MISSING])]
    return [*context, *users, *items]


@dataclasses.dataclass(frozen=True)
class Converted:
    """What `convert` wrote: the contract's files, and how many exposures went to `unconverted` instead."""

    events: str
    items: str
    users: str
    unconverted: str
    events_written: int
    events_unconverted: int


def _require(path: str, columns: tuple[str, ...]) -> list[str]:
    """The header of `path`, checked for `columns`; InputError naming the file otherwise."""
    if not os.path.isfile(path):
        raise input_contract.InputError(f"{path}: KuaiRand file not found")
    with open(path, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    missing = [column for column in columns if column not in header]
    if missing:
        raise input_contract.InputError(f"{path}: missing KuaiRand column(s) {missing}; the header has {header}")
    return header


def _write_items(videos_path: str, items_path: str) -> None:
    with open(videos_path, newline="", encoding="utf-8") as source, \
            open(items_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(ITEM_COLUMNS)
        for row in csv.DictReader(source):
            tags = [tag.strip() for tag in (row["tag"] or "").split(",") if tag.strip()]
            writer.writerow([row["video_id"], features.CATEGORY_SEPARATOR.join(tags),
                             *(row[name] for name in VIDEO_ATTRIBUTES)])


def convert(data_dir: str, output_dir: str) -> Converted:
    """Writes events.csv, items.csv and users.csv (and unconverted.csv) for the KuaiRand-Pure files of
    `data_dir`: every `log_*.csv` standard log, in file-name order, the video and the user table."""
    logs = sorted(glob.glob(os.path.join(data_dir, LOG_PATTERN)))
    if not logs:
        raise input_contract.InputError(f"{data_dir}: no KuaiRand log ({LOG_PATTERN}) found")
    for log in logs:
        _require(log, _LOG_COLUMNS)
    videos = os.path.join(data_dir, VIDEOS_FILE)
    _require(videos, ("video_id", "tag", *VIDEO_ATTRIBUTES))
    users_source = os.path.join(data_dir, USERS_SOURCE_FILE)
    _require(users_source, (features.USER_ID,))
    os.makedirs(output_dir, exist_ok=True)

    items_path = os.path.join(output_dir, input_contract.ITEMS_FILE)
    _write_items(videos, items_path)
    users_path = os.path.join(output_dir, USERS_FILE)
    shutil.copyfile(users_source, users_path)

    events_path = os.path.join(output_dir, input_contract.EVENTS_FILE)
    unconverted_path = os.path.join(output_dir, UNCONVERTED_FILE)
    written = unconverted = 0
    with open(events_path, "w", newline="", encoding="utf-8") as events_handle, \
            open(unconverted_path, "w", newline="", encoding="utf-8") as unconverted_handle:
        events = csv.writer(events_handle)
        events.writerow(EVENT_COLUMNS)
        skipped = csv.writer(unconverted_handle)
        skipped.writerow(["file", "line", "reason", *_LOG_COLUMNS])
        for log in logs:
            with open(log, newline="", encoding="utf-8") as source:
                for line, row in enumerate(csv.DictReader(source), start=2):
                    duration = float(row["duration_ms"] or 0)
                    if duration <= 0:
                        skipped.writerow([os.path.basename(log), line, "no video duration: no watch ratio",
                                          *(row[name] for name in _LOG_COLUMNS)])
                        unconverted += 1
                        continue
                    events.writerow([row["user_id"], row["video_id"], int(row["time_ms"]) // 1000,
                                     *(row[name] for name in SIGNALS),
                                     f"{float(row['play_time_ms']) / duration:.6g}", row["play_time_ms"],
                                     *(row[name] for name in CONTEXT)])
                    written += 1
    return Converted(events_path, items_path, users_path, unconverted_path, written, unconverted)
