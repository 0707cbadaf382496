"""The MovieLens benchmark harness: the protocol's split, leakage-free features, exact metrics, a small full run."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from benchmarks import movielens
from components.example_gen import input_contract
from models import features
from pipeline.data import synthetic


def _events(rows):
    return [input_contract.Event(user, item, timestamp,
                                 {features.CLICKED: int(rating >= 4), features.RATING: rating})
            for user, item, timestamp, rating in rows]


def test_protocol_split_is_the_tutorials_and_deterministic():
    train, test = movielens.protocol_split(1000)
    assert len(train) == 800 and len(test) == 200
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(1000))
    again, _ = movielens.protocol_split(1000)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train[:50], np.arange(50))  # shuffled, not the file order


def test_history_holds_only_earlier_training_events():
    events = _events([("u", "a", 1, 5.0), ("u", "b", 2, 3.0), ("u", "c", 3, 4.0), ("u", "d", 3, 2.0),
                      ("u", "e", 4, 1.0)])
    items = {i: input_contract.Item(i, i.upper(), "", ()) for i in "abcde"}
    train = np.array([0, 2, 3])  # b (t=2) and e (t=4) are test events
    rows = movielens.examples(events, items, np.array([1, 3, 4]), train)
    histories = [[h.decode() for h in row.features.feature[features.HISTORY].bytes_list.value] for row in rows]
    # b sees a; d (t=3) sees a but not c (same time) nor b (test); e sees d, c, a (most recent first).
    assert histories[0] == ["a"]
    assert histories[1] == ["a"]
    assert sorted(histories[2][:2]) == ["c", "d"] and histories[2][2] == "a"


def test_cold_split_removes_every_training_event_of_the_cold_items():
    events = _events([(f"u{i % 7}", f"i{i % 20}", i, 4.0) for i in range(400)])
    train, test = movielens.protocol_split(len(events))
    cold_train, cold_test, cold_items = movielens.cold_split(events, train, test, seed=1)
    assert len(cold_items) == 2
    assert not {events[i].item_id for i in cold_train} & cold_items
    assert {events[i].item_id for i in cold_test} <= cold_items and len(cold_test) > 0


def test_ranking_metrics_by_hand():
    catalogue = np.eye(4)
    users = np.array([[0.9, 0.1, 0.0, 0.0],   # true item 0 ranked 1st
                      [0.1, 0.2, 0.3, 0.4]])  # true item 0 ranked 4th
    metrics = movielens.ranking_metrics(users, catalogue, np.array([0, 0]))
    assert metrics["top_100_accuracy"] == 1.0  # 4 items: everything is in the top 100
    assert metrics["recall_at_10"] == pytest.approx(1.0)
    assert metrics["ndcg_at_10"] == pytest.approx((1.0 + 1.0 / np.log2(5)) / 2, rel=1e-5)


def test_selection_takes_the_best_architecture_and_epoch():
    def epochs(*pairs):
        return [{"validation": {"top_100_accuracy": top, "rmse": rmse}} for top, rmse in pairs]

    results = [{"architecture": "mmoe", "epochs": epochs((0.2, 1.0), (0.3, 0.95), (0.31, 1.2))},
               {"architecture": "ple", "epochs": epochs((0.25, 0.99), (0.29, 0.93))}]
    assert movielens.select(results)[:2] == ("ple", 2)


def test_a_small_run_writes_every_figure(tmp_path):
    data = tmp_path / "data"
    synthetic.generate(str(data), synthetic.SyntheticConfig(num_users=60, num_items=40, events_per_user=12, seed=3))
    items = input_contract.read_items(str(data / input_contract.ITEMS_FILE))
    events = list(input_contract.read_events(str(data / input_contract.EVENTS_FILE), items))
    settings = movielens.Settings(
        max_epochs=2, batch_size=64, architectures=("mmoe",), text_max_length=16,
        text_backbone={"num_layers": 1, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16},
        tfrs_weightings=(("tfrs joint", 1.0, 1.0),))
    declared = features.of_source(synthetic.declared_features(), features.USERS_SOURCE)
    users = movielens.Users(input_contract.read_users(str(data / input_contract.USERS_FILE), declared), tuple(declared))
    report = movielens.run(events, items, str(data / input_contract.ITEMS_FILE), str(tmp_path / "work"), settings,
                           log=lambda line: None, users=users)
    names = [model["name"] for model in report["models"]]
    assert names == ["popularity / global mean", "tfrs joint", "mtrec ids only", "mtrec text (frozen)"]
    for model in report["models"]:
        for key in ("top_100_accuracy", "recall_at_10", "ndcg_at_10", "click_auc"):
            assert 0.0 <= model[key] <= 1.0, (model["name"], key)
        assert 0.0 < model["rmse"] < 5.0
    for model in report["models"][1:]:
        assert model["examples_per_second"] > 0 and model["peak_memory_mb"] > 100
    # The trivial row's RMSE is the test ratings' spread around the training mean, computed independently.
    train, test = movielens.protocol_split(len(events))
    mean = np.mean([events[i].labels[features.RATING] for i in train])
    expected = np.sqrt(np.mean([(events[i].labels[features.RATING] - mean) ** 2 for i in test]))
    assert report["models"][0]["rmse"] == pytest.approx(expected)
    assert set(report["cold_start"]) >= {"cold_items", "mtrec ids only", "mtrec text (frozen)"}
    cold_users = report["cold_users"]
    assert cold_users["cold_users"] == 6 and cold_users["test_pairs"] > 0
    for variant in ("without user features", "with user features"):
        assert 0.0 <= cold_users[variant]["recall_at_100"] <= 1.0 and 0.0 < cold_users[variant]["rmse"] < 5.0
    assert set(report["targets"]) == {"joint_top_100_accuracy >= 0.30", "joint_rmse <= 0.92",
                                      "cold_start_text_beats_ids", "text_throughput >= 0.5x tfrs joint"}
    paths = movielens.write(report, str(tmp_path / "results"), name="small")
    assert [os.path.basename(p) for p in paths] == ["small.json", "small.md", "small.png"]
    assert json.loads(open(paths[0]).read())["models"][1]["name"] == "tfrs joint"
    assert "| tfrs joint |" in open(paths[1]).read()


def test_the_cold_user_split_removes_every_training_event_of_a_tenth_of_the_users():
    events = [input_contract.Event(f"u{i % 20}", "a", i, {}) for i in range(200)]
    train, test = np.arange(0, 150), np.arange(150, 200)
    kept, cold_test, cold = movielens.cold_user_split(events, train, test, seed=1)
    assert len(cold) == 2 and cold <= {event.user_id for event in events}
    assert set(kept.tolist()) == {i for i in train.tolist() if events[i].user_id not in cold}
    assert set(cold_test.tolist()) == {i for i in test.tolist() if events[i].user_id in cold}
