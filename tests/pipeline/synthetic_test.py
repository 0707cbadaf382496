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

# sha256 of the user, item, timestamp, clicked and rating columns for SyntheticConfig(num_users=300, num_items=80,
# seed=5): the generated data changes only on purpose (it last did when the declared features joined the clicks).
EVENTS_DIGEST = "4b82bd41852cb4ea"


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


def test_purchases_are_sparse_and_follow_clicks_and_the_data_changes_only_on_purpose(tmp_path):
    synthetic.generate(str(tmp_path), synthetic.SyntheticConfig(num_users=300, num_items=80, seed=5))
    with open(tmp_path / input_contract.EVENTS_FILE, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    purchased = np.array([int(row[features.PURCHASED]) for row in rows])
    clicked = np.array([int(row[features.CLICKED]) for row in rows])
    assert 0.01 < purchased.mean() < 0.04  # about 2% of the events
    assert not (purchased & (1 - clicked)).any()  # only clicked events are purchased
    import hashlib

    columns = "\n".join(",".join(row[name] for name in features.DEFAULT_EVENT_COLUMNS) for row in rows)
    assert hashlib.sha256(columns.encode()).hexdigest()[:16] == EVENTS_DIGEST


def test_declared_features_carry_signal_and_missing_values(tmp_path):
    """Every declared column is written and follows the contract; the device shifts clicks; some tenures are
    missing, as empty fields and as the declared sentinel."""
    directory = str(tmp_path)
    synthetic.generate(directory, synthetic.SyntheticConfig(num_users=300, num_items=80, seed=5))
    declared = synthetic.declared_features()
    labels = {features.CLICKED: features.BINARY_LABEL, features.RATING: features.NUMERIC_LABEL,
              features.PURCHASED: features.BINARY_LABEL}
    assert input_contract.check_input_dir(directory, labels, declared=declared).ignored_columns == {}
    items = input_contract.read_items(os.path.join(directory, input_contract.ITEMS_FILE), declared=declared)
    users, bad = input_contract.screen_users(os.path.join(directory, input_contract.USERS_FILE), declared)
    assert bad == [] and len(users) == 300
    assert all(item.attributes[synthetic.PRICE] for item in items.values())
    with open(os.path.join(directory, input_contract.USERS_FILE), encoding="utf-8") as handle:
        tenures = [row[synthetic.TENURE_DAYS] for row in csv.DictReader(handle)]
    assert "" in tenures and "-1" in tenures
    assert sum(not user.attributes[synthetic.TENURE_DAYS] for user in users.values()) == \
        tenures.count("") + tenures.count("-1")
    by_device = collections.defaultdict(list)
    for event in input_contract.read_events(os.path.join(directory, input_contract.EVENTS_FILE), items,
                                            declared=declared):
        by_device[event.context[synthetic.DEVICE][0]].append(event.labels[features.CLICKED])
    rates = {device: np.mean(clicks) for device, clicks in by_device.items()}
    assert rates["mobile"] > rates["desktop"] > rates["tv"] + 0.05


def test_draw_is_numpys_weighted_choice():
    """The binary search picks the very positions rng.choice picks from the same uniforms."""
    rng = np.random.default_rng(0)
    topics = rng.integers(8, size=5000)
    weights = rng.dirichlet(np.full(8, 0.3)) + 0.02
    expected = np.random.default_rng(1).choice(5000, size=3000, p=weights[topics] / weights[topics].sum())
    topic_counts = np.cumsum(np.eye(8, dtype=np.int64)[topics], axis=0)
    drawn = synthetic._draw(np.random.default_rng(1), topic_counts, weights, 3000)
    np.testing.assert_array_equal(drawn, expected)
