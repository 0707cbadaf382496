"""The MovieLens benchmark harness: the protocol's split, leakage-free features, exact metrics, a small full run."""

from __future__ import annotations

import dataclasses
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


def test_time_split_new_items_are_those_first_seen_in_the_last_tenth():
    # 20 events at t = 0..19: the last 10% (2 events) begin at t = 18. Item "n" first appears at t = 18 and "m" at
    # t = 19; "a" is old and has an event after the cutoff too; "b" is seen early only.
    rows = [("u1", "a" if t % 2 else "b", t, 4.0) for t in range(18)] + [("u1", "n", 18, 5.0), ("u2", "m", 19, 3.0)]
    rows += [("u2", "a", 18, 2.0), ("u3", "n", 25, 1.0)]  # the cutoff is still t = 18 (22 events: index 19)
    events = _events(rows)
    train, test, new = movielens.time_split(events)
    assert new == {"n", "m"}
    assert train.tolist() == list(range(18))  # every event before the cutoff, of every item
    assert sorted(events[i].item_id for i in test) == ["m", "n", "n"]  # a's late event is not a new item's


def test_load_names_the_directory_when_neither_layout_is_there(tmp_path):
    (tmp_path / input_contract.EVENTS_FILE).write_text("user_id,item_id,timestamp,clicked,rating\n")
    with pytest.raises(input_contract.InputError) as raised:
        movielens.load(str(tmp_path), str(tmp_path / "work"))
    message = str(raised.value)
    assert message.startswith(f"{tmp_path}: neither the MovieLens 100K files")
    assert "u.data" in message and "events.csv and items.csv" in message


def test_ties_count_by_their_chance_of_reaching_the_top_100():
    # 150 items; the true item ties with 49 others and 80 score strictly higher: 20 of the 50 tied places are in
    # the top 100, so the pair counts 20/50 = 0.4. Every other item scores 0, so the second user's item is 1st.
    catalogue = np.zeros((150, 2))
    catalogue[:80, 0], catalogue[80:130, 0], catalogue[130:, 1] = 2.0, 1.0, 1.0
    users = np.array([[1.0, 0.0], [0.0, 1.0]])
    metrics = movielens.ranking_metrics(users, catalogue, np.array([100, 149]))
    # User 2: item 149 ties with 19 others (rows 130..149), none above: all 20 places are in the top 100.
    assert metrics["top_100_accuracy"] == pytest.approx((0.4 + 1.0) / 2)


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
    loaded = movielens.load(str(data), str(tmp_path / "work"))
    assert (loaded.name, loaded.report_name, loaded.users) == ("data", "movielens-protocol-data", movielens.Users())
    items, events = loaded.items, loaded.events
    # Two items (about 40 of the 769 events, fewer than the last tenth) appear only at the end of the timeline, so
    # the time split has new items to measure.
    last = max(event.timestamp for event in events)
    late = set(sorted(items)[:2])
    events = [dataclasses.replace(event, timestamp=last + 1 + i) if event.item_id in late else event
              for i, event in enumerate(events)]
    settings = movielens.Settings(
        max_epochs=2, batch_size=64, architectures=("mmoe",), text_max_length=16,
        text_backbone={"num_layers": 1, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16},
        tfrs_weightings=(("tfrs joint", 1.0, 1.0),), throughput_batch_size=16, throughput_steps=2)
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
    new_items = report["time_split_cold"]
    assert new_items["new_items"] == 2 and new_items["test_pairs"] == sum(e.item_id in late for e in events)
    for variant in ("mtrec ids only", "mtrec text (frozen)"):
        assert 0.0 <= new_items[variant]["recall_at_100"] <= 1.0
    assert set(report["targets"]) == {
        "joint_top_100_accuracy >= 0.30", "joint_rmse <= 0.92", "cold_start_text_beats_ids",
        "cold_text_recall_at_100 >= 0.232 (2x before id dropout)", "text_top_100_accuracy >= 0.573 (before id "
        "dropout - 0.01)", "text_rmse <= 0.906 (before id dropout + 0.005)",
        "time_split_text_recall_at_100 >= 5x ids only and >= 0.10", "text_throughput >= 0.5x tfrs joint",
        "best user-behaviour variant top_100_accuracy >= mean tower + 0.02 at equal or better RMSE",
        "finetune per distinct text >= 3x per event (examples/s)"}
    behaviour = report["user_behaviour"]
    assert [model["name"] for model in behaviour["models"]] == [
        "mean tower", "transformer tower", "mean tower + target attention", "transformer tower + target attention"]
    assert behaviour["models"][0]["top_100_accuracy"] == report["models"][3]["top_100_accuracy"]
    for model in behaviour["models"]:
        assert 0.0 <= model["top_100_accuracy"] <= 1.0 and 0.0 < model["rmse"] < 5.0, model["name"]
    assert set(behaviour["selection"]) == {"transformer tower", "mean tower + target attention",
                                           "transformer tower + target attention"}
    for name in ("frozen", "finetune, per distinct text", "finetune, per event"):
        assert behaviour["finetune_throughput"][name]["examples_per_second"] > 0
    for name in ("frozen, 1 epoch", "finetune, 1 epoch"):
        assert 0.0 < behaviour["finetune_quality"][name]["rmse"] < 5.0
    paths = movielens.write(report, str(tmp_path / "results"), name="small")
    assert [os.path.basename(p) for p in paths] == ["small.json", "small.md", "small.png"]
    assert json.loads(open(paths[0]).read())["models"][1]["name"] == "tfrs joint"
    markdown = open(paths[1]).read()
    assert "| tfrs joint |" in markdown and "Time-split cold start: 2 items" in markdown
    assert "| transformer tower + target attention (" in markdown and "finetune, per event:" in markdown


def test_the_cold_user_split_removes_every_training_event_of_a_tenth_of_the_users():
    events = [input_contract.Event(f"u{i % 20}", "a", i, {}) for i in range(200)]
    train, test = np.arange(0, 150), np.arange(150, 200)
    kept, cold_test, cold = movielens.cold_user_split(events, train, test, seed=1)
    assert len(cold) == 2 and cold <= {event.user_id for event in events}
    assert set(kept.tolist()) == {i for i in train.tolist() if events[i].user_id not in cold}
    assert set(cold_test.tolist()) == {i for i in test.tolist() if events[i].user_id in cold}


def test_user_behaviour_targets_take_the_best_variant_at_equal_rmse_and_report_a_failed_job_as_missed():
    from benchmarks import user_behaviour

    def model(name, top, rmse):
        return {"name": name, "top_100_accuracy": top, "rmse": rmse}

    report = {"models": [model("mean tower", 0.50, 0.90), model("transformer tower", 0.60, 0.95),
                         model("mean tower + target attention", 0.53, 0.90),
                         model("transformer tower + target attention", 0.51, 0.89)],
              "finetune_throughput": {"finetune, per distinct text": {"examples_per_second": 30.0},
                                      "finetune, per event": {"examples_per_second": 10.0}}}
    gain, speed = user_behaviour.targets(report).values()
    # The transformer tower gains most but at a worse RMSE; of the others, target attention gains 0.03.
    assert gain["variant"] == "mean tower + target attention" and gain["gain"] == pytest.approx(0.03)
    assert gain["met"] is True
    assert speed["ratio"] == pytest.approx(3.0) and speed["met"] is True
    report["finetune_throughput"]["finetune, per event"] = {"failed": "the job's process died (out of memory)"}
    _, speed = user_behaviour.targets(report).values()
    assert speed["ratio"] is None and speed["met"] is False and "failed" in speed
    report["models"][2] = model("mean tower + target attention", 0.53, 0.91)
    gain, _ = user_behaviour.targets(report).values()
    assert gain["variant"] == "transformer tower + target attention" and gain["met"] is False
