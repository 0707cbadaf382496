"""The generator is deterministic, follows the contract, and carries the latent signal models must learn."""

from __future__ import annotations

import collections
import csv
import filecmp
import os

import numpy as np
import pytest

from components.example_gen import executor as example_gen_executor
from components.example_gen import input_contract
from models import features
from pipeline.data import synthetic
from tests.conftest import SMALL

# sha256 of the user, item, timestamp, clicked and rating columns for SyntheticConfig(num_users=300, num_items=80,
# seed=5): the generated data changes only on purpose (it last did when items got release times).
EVENTS_DIGEST = "4bb318fb520e6774"


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


def _time_split(directory: str) -> dict[str, list[input_contract.Event]]:
    """The events of each split, as EventsExampleGen's default time split makes them."""
    items = input_contract.read_items(os.path.join(directory, input_contract.ITEMS_FILE))
    by_user = collections.defaultdict(list)
    for line, event in enumerate(input_contract.read_events(os.path.join(directory, input_contract.EVENTS_FILE),
                                                            items)):
        by_user[event.user_id].append((line, event, None))
    splits = collections.defaultdict(list)
    for events in by_user.values():
        for split, event, _, _ in example_gen_executor.user_timeline(events, 20, "time", 0.2, 42):
            splits[split].append(event)
    return splits


def test_the_default_datas_eval_split_holds_items_new_at_that_point(tmp_path):
    """Items come out over the log, so the default run's eval split has events on items absent from its train
    split: the `item_popularity=cold` slice is not empty. Without releases (new_item_fraction 0) it has none."""
    synthetic.generate(str(tmp_path / "default"), synthetic.SyntheticConfig())
    splits = _time_split(str(tmp_path / "default"))
    seen = {event.item_id for event in splits[example_gen_executor.TRAIN]}
    new = [event for event in splits[example_gen_executor.EVAL] if event.item_id not in seen]
    assert len(new) >= 50 and len({event.item_id for event in new}) >= 10
    synthetic.generate(str(tmp_path / "static"), synthetic.SyntheticConfig(new_item_fraction=0.0))
    splits = _time_split(str(tmp_path / "static"))
    seen = {event.item_id for event in splits[example_gen_executor.TRAIN]}
    assert all(event.item_id in seen for event in splits[example_gen_executor.EVAL])


def test_items_first_appear_over_the_whole_log(tmp_path):
    """About half the appearing items are out at the start; the others first appear spread over the log."""
    synthetic.generate(str(tmp_path), synthetic.SyntheticConfig())
    items = input_contract.read_items(os.path.join(str(tmp_path), input_contract.ITEMS_FILE))
    first: dict[str, int] = {}
    for event in input_contract.read_events(os.path.join(str(tmp_path), input_contract.EVENTS_FILE), items):
        first[event.item_id] = min(first.get(event.item_id, event.timestamp), event.timestamp)
    times = np.array(sorted(first.values()))
    position = (times - times[0]) / (times[-1] - times[0])
    assert 0.25 < np.mean(position > 0.5) < 0.4  # half the new items are released in the log's second half
    assert np.mean(position > 0.9) > 0.03


def test_a_new_item_fraction_of_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="new_item_fraction"):
        synthetic.generate(str(tmp_path), synthetic.SyntheticConfig(new_item_fraction=1.0))


def test_draw_picks_only_available_positions():
    """With `available`, each draw is rng.choice over its own leading positions only."""
    topics = np.random.default_rng(0).integers(8, size=500)
    weights = np.full(8, 1.0)
    topic_counts = np.cumsum(np.eye(8, dtype=np.int64)[topics], axis=0)
    available = np.repeat([1, 10, 500], 1000)
    drawn = synthetic._draw(np.random.default_rng(1), topic_counts, weights, 3000, available)
    assert (drawn < available).all() and (drawn[:1000] == 0).all()
    assert len(set(drawn[1000:2000])) == 10 and len(set(drawn[2000:])) > 400
