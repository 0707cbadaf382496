"""`mtrec benchmark kuairand` on a small generated slice in the KuaiRand-Pure format: every model trains in its
own process, the days split as the protocol says, and the report holds every task's figures and the targets."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from benchmarks import kuairand as benchmark
from pipeline.data import kuairand

LOG_COLUMNS = ("user_id", "video_id", "date", "hourmin", "time_ms", "is_click", "is_like", "is_follow", "is_comment",
               "is_forward", "is_hate", "long_view", "play_time_ms", "duration_ms", "profile_stay_time",
               "comment_stay_time", "is_profile_enter", "is_rand", "tab")
VIDEO_COLUMNS = ("video_id", "author_id", "video_type", "upload_dt", "upload_type", "visible_status",
                 "video_duration", "server_width", "server_height", "music_id", "music_type", "tag")
DAY_SECONDS = 86400
START = 1650816000  # 2022-04-25 00:00 in Beijing (UTC+8)


def _write_slice(directory: str, users: int = 30, videos: int = 40, per_day: int = 60, days: int = 9) -> str:
    """A log over `days` days from 04-25 whose clicks follow the user's activity (its table's activity degree),
    the video's type and their match, and whose likes, follows and comments follow the clicks."""
    rng = np.random.default_rng(0)
    os.makedirs(directory, exist_ok=True)
    taste = rng.random(users) < 0.5
    video_kind = rng.random(videos) < 0.5
    with open(os.path.join(directory, kuairand.USERS_SOURCE_FILE), "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", *kuairand.USER_CATEGORICAL])
        for user in range(users):
            writer.writerow([user, "full_active" if taste[user] else "low_active",
                             *(rng.integers(3) for _ in kuairand.USER_CATEGORICAL[1:])])
    with open(os.path.join(directory, kuairand.VIDEOS_FILE), "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(VIDEO_COLUMNS)
        for video in range(videos):
            writer.writerow([video, rng.integers(5), "NORMAL" if video_kind[video] else "AD", "2022-04-10",
                             "Kmovie", 0.0, float(rng.integers(5000, 60000)), 720.0, 1280.0, rng.integers(4), 9.0,
                             f"{rng.integers(3)},{rng.integers(3, 6)}"])
    path = os.path.join(directory, "log_standard_4_25_to_5_03_pure.csv")
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(LOG_COLUMNS)
        for day in range(days):
            for _ in range(per_day):
                user, video = int(rng.integers(users)), int(rng.integers(videos))
                seconds = START + day * DAY_SECONDS + int(rng.integers(DAY_SECONDS))
                click = int(rng.random() < 0.1 + 0.4 * taste[user] + 0.3 * video_kind[video]
                            + 0.15 * (taste[user] == video_kind[video]))
                like, follow, comment = (int(click and rng.random() < p) for p in (0.4, 0.2, 0.2))
                writer.writerow([user, video, 20220425 + day, 0, seconds * 1000 + int(rng.integers(1000)), click,
                                 like, follow, comment, 0, 0, click, 1000 * click + 200, 10000, 0, 0, 0, 0,
                                 int(rng.integers(3))])
    return directory


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("kuairand")
    data = _write_slice(str(root / "raw"))
    settings = benchmark.Settings(max_epochs=2, batch_size=64, learning_rate=0.01, architectures=("mmoe",),
                                  lightgbm_rounds=20)
    return benchmark.run(data, str(root / "work"), settings, log=lambda line: None), str(root)


def test_the_days_split_train_validation_and_test():
    assert benchmark.split_of(START) == "train"  # 04-25 00:00 in Beijing
    assert benchmark.split_of(START - 1) == "train"  # 04-24 in Beijing still trains
    assert benchmark.split_of(START + 5 * DAY_SECONDS) == "validation"  # 04-30
    assert benchmark.split_of(START + 6 * DAY_SECONDS - 1) == "validation"
    assert benchmark.split_of(START + 6 * DAY_SECONDS) == "test"  # 05-01


def test_every_model_reports_every_task(report):
    result, _ = report
    assert result["protocol"]["examples"]["validation"] > 0 and result["protocol"]["examples"]["test"] > 0
    names = [model["name"] for model in result["models"]]
    assert names == ["logistic regression", "LightGBM",
                     *(f"mtrec single-task {task}" for task in (*benchmark.BINARY_TASKS, "watch_ratio")),
                     "mtrec mmoe", "mtrec mmoe + ESMM"]
    for model in result["models"]:
        assert model["peak_memory_mb"] > 0 and model["examples_per_second"] > 0
        single = model["name"].startswith("mtrec single-task")
        expected = {model["name"].removeprefix("mtrec single-task ")} if single else {
            *benchmark.BINARY_TASKS, "watch_ratio"}
        assert set(model["test"]) == expected
        for task, metrics in model["test"].items():
            keys = {"rmse"} if task == "watch_ratio" else {"auc", "gauc", "logloss"}
            assert set(metrics) == keys and all(np.isfinite(value) for value in metrics.values())


def test_the_models_learn_the_click_signal(report):
    """Clicks follow the user's activity and the video's type: every model beats chance on the test days."""
    result, _ = report
    for model in result["models"]:
        if "click" in model["test"]:
            assert model["test"]["click"]["auc"] > 0.6, model["name"]


def test_targets_and_files(report, tmp_path):
    result, _ = report
    assert result["chosen_multitask"]["name"] in ("mtrec mmoe", "mtrec mmoe + ESMM")
    assert len(result["targets"]) == 3 + 5 + 1 and all(isinstance(t["met"], bool) for t in result["targets"].values())
    paths = benchmark.write(result, str(tmp_path))
    assert [os.path.basename(path) for path in paths] == ["kuairand.json", "kuairand.md", "kuairand.png"]
    with open(paths[0], encoding="utf-8") as handle:
        assert json.load(handle)["targets"] == result["targets"]
    with open(paths[1], encoding="utf-8") as handle:
        text = handle.read()
    assert "| LightGBM |" in text and "Targets:" in text


def test_the_user_behaviour_run_trains_both_towers_on_the_same_data(tmp_path):
    data = _write_slice(str(tmp_path / "raw"))
    settings = benchmark.Settings(max_epochs=2, batch_size=64, learning_rate=0.01)
    result = benchmark.run_user_behaviour(data, str(tmp_path / "work"), settings, log=lambda line: None)
    assert [model["name"] for model in result["models"]] == ["mtrec mmoe + ESMM, mean tower",
                                                             "mtrec mmoe + ESMM, transformer tower"]
    mean, transformer = result["models"]
    for model in result["models"]:
        assert model["test"]["click"]["auc"] > 0.6, model["name"]
    (target,) = result["targets"].values()
    assert target["click_gauc_delta"] == pytest.approx(transformer["test"]["click"]["gauc"]
                                                       - mean["test"]["click"]["gauc"])
    assert target["met"] == (target["mean_delta"] >= 0)
    paths = benchmark.write(result, str(tmp_path / "results"), "kuairand-user-behaviour")
    with open(paths[1], encoding="utf-8") as handle:
        assert handle.read().startswith("# KuaiRand-Pure: the transformer user tower against the mean tower")
