"""Converts the GroupLens MovieLens 100K files into the CSV contract.

Ratings become events (clicked = rating >= 4, the usual implicit-feedback reading); each movie's title,
release date and genres become the item text, and the genres its categories. The user table (`u.user`) becomes
users.csv: age, gender, occupation and the first three characters of the zip code.
"""

from __future__ import annotations

import csv
import os

from components.example_gen import input_contract
from models import features
from models.features import Feature

CLICK_THRESHOLD = 4.0
USERS_FILE = input_contract.USERS_FILE
USER_COLUMNS = (features.USER_ID, "age", "gender", "occupation", "zip_prefix")
ZIP_PREFIX = 3


def declared_features() -> list[Feature]:
    """The u.user demographics as user features: age (z-scored), gender, occupation and the zip code's prefix."""
    return [Feature("age", features.USERS_SOURCE, features.NUMERIC),
            *(Feature(name, features.USERS_SOURCE, features.CATEGORICAL)
              for name in ("gender", "occupation", "zip_prefix"))]


def _require(path: str) -> str:
    if not os.path.isfile(path):
        raise input_contract.InputError(f"{path}: MovieLens 100K file not found")
    return path


def _genres(data_dir: str) -> list[str]:
    with open(_require(os.path.join(data_dir, "u.genre")), encoding="latin-1") as handle:
        return [line.split("|")[0] for line in handle if line.strip()]


def _write_users(data_dir: str, users_path: str) -> None:
    user_source = _require(os.path.join(data_dir, "u.user"))
    with open(user_source, encoding="latin-1") as source, open(users_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(USER_COLUMNS)
        for line_number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("|")
            if len(fields) != 5:
                raise input_contract.InputError(
                    f"{user_source}, line {line_number}: {len(fields)} fields, expected 5 "
                    "(user id, age, gender, occupation, zip code)")
            user_id, age, gender, occupation, zip_code = fields
            writer.writerow([user_id, age, gender, occupation, zip_code[:ZIP_PREFIX]])


def convert(data_dir: str, output_dir: str) -> tuple[str, str, str]:
    """Writes events.csv, items.csv and users.csv for the ML-100K files in `data_dir`; returns their paths."""
    genres = _genres(data_dir)
    os.makedirs(output_dir, exist_ok=True)
    items_path = os.path.join(output_dir, input_contract.ITEMS_FILE)
    item_source = _require(os.path.join(data_dir, "u.item"))
    with open(item_source, encoding="latin-1") as source, \
            open(items_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(features.ITEM_COLUMNS)
        for line_number, line in enumerate(source, start=1):
            fields = line.rstrip("\n").split("|")
            if len(fields) != 5 + len(genres):
                raise input_contract.InputError(
                    f"{item_source}, line {line_number}: {len(fields)} fields, expected {5 + len(genres)}")
            movie_id, title, release_date = fields[0], fields[1], fields[2]
            movie_genres = [g for g, flag in zip(genres, fields[5:], strict=True) if flag == "1" and g != "unknown"]
            description = f"Released {release_date}. Genres: {', '.join(movie_genres) or 'unknown'}."
            writer.writerow([movie_id, title, description, features.CATEGORY_SEPARATOR.join(movie_genres)])

    events_path = os.path.join(output_dir, input_contract.EVENTS_FILE)
    rating_source = _require(os.path.join(data_dir, "u.data"))
    with open(rating_source, encoding="latin-1") as source, \
            open(events_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(features.DEFAULT_EVENT_COLUMNS)
        for line_number, line in enumerate(source, start=1):
            fields = line.split()
            if len(fields) != 4:
                raise input_contract.InputError(
                    f"{rating_source}, line {line_number}: {len(fields)} fields, expected 4 "
                    "(user id, item id, rating, timestamp)")
            user_id, movie_id, rating, timestamp = fields
            writer.writerow([user_id, movie_id, timestamp, int(float(rating) >= CLICK_THRESHOLD), rating])
    users_path = os.path.join(output_dir, USERS_FILE)
    _write_users(data_dir, users_path)
    return events_path, items_path, users_path
