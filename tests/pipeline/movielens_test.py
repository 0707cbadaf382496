"""The MovieLens 100K adapter: GroupLens files -> the CSV contract."""

from __future__ import annotations

import os

import pytest

from components.example_gen import input_contract
from models import features
from pipeline.data import movielens

SHARED_ML100K = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "movielens-100k")


def _write_ml_files(directory):
    (directory / "u.genre").write_text("unknown|0\nAction|1\nComedy|2\n\n")
    (directory / "u.item").write_bytes(
        b"1|Toy Story (1995)|01-Jan-1995||http://x|0|0|1\n2|Caf\xe9 (1996)|01-Jan-1996||http://y|0|1|1\n")
    (directory / "u.data").write_text("196\t1\t3\t881250949\n186\t2\t5\t891717742\n")
    (directory / "u.user").write_text("196|49|M|writer|55105\n186|39|F|executive|T8H1N\n")


def test_carries_the_user_table(tmp_path):
    _write_ml_files(tmp_path)
    _, _, users = movielens.convert(str(tmp_path), str(tmp_path / "out"))
    with open(users, encoding="utf-8") as handle:
        assert handle.read().splitlines() == ["user_id,age,gender,occupation,zip_prefix", "196,49,M,writer,551",
                                              "186,39,F,executive,T8H"]
    (tmp_path / "u.user").write_text("196|49|M|writer\n")
    with pytest.raises(input_contract.InputError, match=r"u.user, line 1: 4 fields, expected 5"):
        movielens.convert(str(tmp_path), str(tmp_path / "out"))


def test_converts_ratings_titles_and_genres(tmp_path):
    _write_ml_files(tmp_path)
    movielens.convert(str(tmp_path), str(tmp_path / "out"))
    items = input_contract.read_items(str(tmp_path / "out" / "items.csv"))
    assert items["2"].title == "Café (1996)"  # u.item is Latin-1
    assert items["2"].categories == ("Action", "Comedy")
    assert "Genres: Comedy" in items["1"].description
    events = list(input_contract.read_events(str(tmp_path / "out" / "events.csv"), items))
    assert [(e.user_id, e.item_id, e.labels[features.RATING], e.labels[features.CLICKED])
            for e in events] == [("196", "1", 3.0, 0), ("186", "2", 5.0, 1)]


def test_malformed_rating_line_is_named(tmp_path):
    _write_ml_files(tmp_path)
    (tmp_path / "u.data").write_text("196\t1\t3\t881250949\n186\t2\n")
    with pytest.raises(input_contract.InputError, match=r"u\.data, line 2: 2 fields, expected 4"):
        movielens.convert(str(tmp_path), str(tmp_path / "out"))


@pytest.mark.skipif(not os.path.isdir(SHARED_ML100K), reason="../shared/data/movielens-100k is not present")
def test_real_movielens_100k(tmp_path):
    movielens.convert(SHARED_ML100K, str(tmp_path))
    assert input_contract.check_input_dir(str(tmp_path)) == input_contract.InputFiles(100_000, 1682, {})
    items, bad = input_contract.screen_items(str(tmp_path / input_contract.ITEMS_FILE))
    assert bad == [] and len(list(input_contract.read_events(str(tmp_path / input_contract.EVENTS_FILE), items))) \
        == 100_000
