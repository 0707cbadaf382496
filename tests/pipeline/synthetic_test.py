"""The generator is deterministic, follows the contract, and carries the latent signal models must learn."""

from __future__ import annotations

import collections
import csv
import filecmp
import os

import numpy as np

from components.example_gen import input_contract
from models import features
from pipeline.data import synthetic
from tests.conftest import SMALL

# sha256 of the user, item, timestamp, clicked and rating columns that the generator wrote, before purchases
# existed, for SyntheticConfig(num_users=300, num_items=80, seed=5).
PRE_PURCHASE_DIGEST = "5660e7b9a88fa5a1"


def test_same_config_same_bytes(tmp_path):
    first = synthetic.generate(str(tmp_path / "a"), SMALL)
    second = synthetic.generate(str(tmp_path / "b"), SMALL)
    assert all(filecmp.cmp(x, y, shallow=False) for x, y in zip(first, second, strict=True))


def test_output_follows_the_contract(small_data_dir):
    items, bad = input_contract.screen_items(os.path.join(small_data_dir, input_contract.ITEMS_FILE))
    assert bad == [] and len(items) == SMALL.num_items
    events = len(list(input_contract.read_events(os.path.join(small_data_dir, input_contract.EVENTS_FILE), items)))
    assert SMALL.num_users * SMALL.events_per_user // 2 <= events <= SMALL.num_users * SMALL.events_per_user * 3 // 2


def test_cold_items_never_appear_in_events(small_data_dir):
    items = input_contract.read_items(os.path.join(small_data_dir, input_contract.ITEMS_FILE))
    seen = {e.item_id for e in input_contract.read_events(os.path.join(small_data_dir, "events.csv"), items)}
    assert len(items) - len(seen) >= round(SMALL.cold_item_fraction * SMALL.num_items)


def test_item_text_reflects_its_topic(small_data_dir):
    with open(os.path.join(small_data_dir, input_contract.ITEMS_FILE), encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            topic = row["categories"].split("|")[0]
            words = set(row["title"].lower().split()) | set(row["description"].rstrip(".").split())
            assert words & set(synthetic.TOPICS[topic]), row


def test_clicks_depend_on_taste():
    """Users click items of their most clicked topic far more often than items of other topics."""
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        synthetic.generate(directory, synthetic.SyntheticConfig(num_users=200, num_items=80, seed=5))
        items = input_contract.read_items(os.path.join(directory, input_contract.ITEMS_FILE))
        by_user = collections.defaultdict(list)
        for event in input_contract.read_events(os.path.join(directory, "events.csv"), items):
            by_user[event.user_id].append((items[event.item_id].categories[0], event.labels[features.CLICKED]))
    favourite, other = [], []
    for events in by_user.values():
        topics = collections.Counter(topic for topic, clicked in events if clicked)
        if not topics:
            continue
        best = topics.most_common(1)[0][0]
        favourite += [clicked for topic, clicked in events if topic == best]
        other += [clicked for topic, clicked in events if topic != best]
    assert sum(favourite) / len(favourite) > 1.5 * sum(other) / len(other)


def test_purchases_are_sparse_follow_clicks_and_leave_the_other_columns_as_they_were(tmp_path):
    synthetic.generate(str(tmp_path), synthetic.SyntheticConfig(num_users=300, num_items=80, seed=5))
    with open(tmp_path / input_contract.EVENTS_FILE, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    purchased = np.array([int(row[features.PURCHASED]) for row in rows])
    clicked = np.array([int(row[features.CLICKED]) for row in rows])
    assert 0.01 < purchased.mean() < 0.04  # about 2% of the events
    assert not (purchased & (1 - clicked)).any()  # only clicked events are purchased
    # Purchases draw from their own random stream: the columns that existed before are unchanged (this digest
    # is of the clicks and ratings as generated before purchases were added).
    import hashlib

    before = "\n".join(",".join(row[name] for name in features.DEFAULT_EVENT_COLUMNS) for row in rows)
    assert hashlib.sha256(before.encode()).hexdigest()[:16] == PRE_PURCHASE_DIGEST


def test_draw_is_numpys_weighted_choice():
    """The binary search picks the very positions rng.choice picks from the same uniforms."""
    rng = np.random.default_rng(0)
    topics = rng.integers(8, size=5000)
    weights = rng.dirichlet(np.full(8, 0.3)) + 0.02
    expected = np.random.default_rng(1).choice(5000, size=3000, p=weights[topics] / weights[topics].sum())
    topic_counts = np.cumsum(np.eye(8, dtype=np.int64)[topics], axis=0)
    drawn = synthetic._draw(np.random.default_rng(1), topic_counts, weights, 3000)
    np.testing.assert_array_equal(drawn, expected)
