"""`mtrec benchmark continuous` on a small generated slice in the KuaiRand-Pure format: every day's window trains
a cold and a warm model in a process of its own, the no-retraining model is the first day's, and the report holds
each day's figures, the means and the targets."""

from __future__ import annotations

import json
import os

import pytest

from benchmarks import continuous
from tests.benchmarks.kuairand_test import _write_slice

SETTINGS = continuous.Settings(window_days=3, first_end_day="2022-04-28", last_test_day="2022-05-01", max_epochs=2,
                               batch_size=64, learning_rate=0.01)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("continuous")
    data = _write_slice(str(root / "raw"), users=40, per_day=120)
    return continuous.run(data, str(root / "work"), SETTINGS, log=lambda line: None)


def test_the_windows_and_test_days_follow_the_protocol():
    assert continuous.end_days(SETTINGS) == ["2022-04-28", "2022-04-29", "2022-04-30"]
    assert continuous.window("2022-04-29", SETTINGS) == ["2022-04-27", "2022-04-28", "2022-04-29"]


def test_every_day_reports_every_model_on_its_next_day(report):
    assert [(day["end_day"], day["test_day"]) for day in report["days"]] == [
        ("2022-04-28", "2022-04-29"), ("2022-04-29", "2022-04-30"), ("2022-04-30", "2022-05-01")]
    choice = report["protocol"]["epoch_choice"]
    assert choice["validation_day"] == "2022-04-28" and len(choice["validation_mean_auc"]) == SETTINGS.max_epochs
    first, *later = report["days"]
    assert first["warm"]["test"] == first["warm_day"]["test"] == first["cold"]["test"] == first["frozen"]["test"]
    for day in later:
        assert day["cold"]["epochs"] == choice["epochs"] and day["warm"]["epochs"] == day["warm_day"]["epochs"] == 1
        tested = [json.dumps(day[name]["test"], sort_keys=True) for name in continuous.MODELS]
        assert len(set(tested)) == len(tested)  # four different models
        for name in continuous.WARM_MODELS:
            assert day[name]["carry_seconds"] < day[name]["train_seconds"]
            users = day[name]["carried"]["tables"]["user_id_embedding"]
            assert users["known"] > 0 and day[name]["carried"]["not_carried"] == {}
        assert 100 < day["test_examples"] <= 120 and 300 < day["train_examples"] <= 360  # a day's, and 3 days'



def test_the_models_learn_the_click_signal(report):
    # The slice's clicks follow the user's and the video's type: each model beats a random ranker by far.
    for day in report["days"]:
        for name in continuous.MODELS:
            assert day[name]["test"]["click"]["auc"] > 0.65, (day["end_day"], name)


def test_the_summary_and_targets_come_from_the_days(report, tmp_path):
    days, summary = report["days"], report["summary"]
    expected = sum(day["cold"]["test"]["click"]["auc"] for day in days) / len(days)
    assert summary["cold"]["click"]["auc"] == pytest.approx(expected)
    assert summary["warm"]["train_seconds"] == pytest.approx(sum(day["warm"]["train_seconds"] for day in days[1:]))
    targets = report["targets"]
    assert len(targets) == 10 and all(isinstance(target["met"], bool) for target in targets.values())
    day_only = targets["warm start, new day only training time <= 0.5 of cold start"]
    assert day_only["ratio"] == pytest.approx(summary["warm_day"]["train_seconds"] / summary["cold"]["train_seconds"])
    ratio = targets["warm start training time <= 0.5 of cold start"]
    assert ratio["ratio"] == pytest.approx(summary["warm"]["train_seconds"] / summary["cold"]["train_seconds"])
    paths = continuous.write(report, str(tmp_path))
    assert sorted(os.path.basename(path) for path in paths) == ["continuous.json", "continuous.md", "continuous.png"]
    with open(os.path.join(tmp_path, "continuous.json"), encoding="utf-8") as handle:
        assert json.load(handle)["targets"] == json.loads(json.dumps(targets))
    with open(os.path.join(tmp_path, "continuous.md"), encoding="utf-8") as handle:
        text = handle.read()
    assert "| 2022-04-29 | 2022-04-30 |" in text
    for name, target in targets.items():
        assert f"{name}: {'met' if target['met'] else 'NOT met'}" in text
