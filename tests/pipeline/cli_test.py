"""`mtrec run` on bad input: one clear message naming file and line; a file fault stops the run before the
pipeline (exit code 2), input without one usable row fails in ExampleGen naming the rows (exit code 1)."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from pipeline import cli, local_runner

ITEMS = "item_id,title,description,categories\ni1,Rocket,To orbit,space\n"


def _run(tmp_path, events: str, capsys) -> tuple[int, str]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "items.csv").write_text(ITEMS)
    (data / "events.csv").write_text(events)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"),
                                      "data": {"source": "csv", "path": str(data)}}))
    code = cli.main(["run", "--config", str(config)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("events", "message"), [
    ("user_id,item_id,timestamp,clicked\nu1,i1,1,1\n", "events.csv: missing required column(s) ['rating']"),
    ("user_id;item_id;timestamp;clicked;rating\nu1;i1;1;1;4\n", "the header looks ';'-separated"),
    ('user_id,item_id,timestamp,clicked,rating\nu1,"i1,1,1,4\n', "events.csv, line 2: unparsable CSV"),
])
def test_file_faults_stop_before_the_pipeline(tmp_path, capsys, events, message):
    code, err = _run(tmp_path, events, capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    output = tmp_path / "out"
    assert not os.path.exists(output / local_runner.SUMMARY_FILE)
    assert not os.path.exists(output / "pipeline_root")


@pytest.mark.parametrize(("events", "message"), [
    ("user_id,item_id,timestamp,clicked,rating\nu1,i2,1,1,4\n",
     "events.csv, line 2, column 'item_id': item 'i2' is not in the item catalogue"),
    ("user_id,item_id,timestamp,clicked,rating\nu1,i1,1,1,four\nu1,i1,2,1,nan\n",
     "events.csv, line 2, column 'rating': 'four' is not float; events.csv, line 3, column 'rating': 'nan' is not a "
     "finite number"),
])
def test_input_without_a_usable_row_fails_in_example_gen_naming_the_rows(tmp_path, capsys, events, message):
    code, err = _run(tmp_path, events, capsys)
    assert code == 1
    assert "no usable events; all" in err and message in err
    with open(tmp_path / "out" / local_runner.SUMMARY_FILE, encoding="utf-8") as handle:
        summary = json.load(handle)
    assert summary["status"] == "failed" and message in summary["error"]
    assert not os.path.exists(tmp_path / "out" / "pipeline_root" / "Transform")


def test_missing_input_directory_is_named(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"),
                                      "data": {"source": "csv", "path": str(tmp_path / "nowhere")}}))
    assert cli.main(["run", "--config", str(config)]) == 2
    assert f"{tmp_path / 'nowhere'}: input directory not found" in capsys.readouterr().err


def test_benchmark_movielens_names_a_directory_without_either_layout(tmp_path, capsys):
    assert cli.main(["benchmark", "movielens", "--data", str(tmp_path), "--output", str(tmp_path / "out")]) == 2
    assert f"{tmp_path}: neither the MovieLens 100K files" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")


def test_invalid_config_is_reported_before_any_work(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"), "training": {"epochs": -1}}))
    assert cli.main(["run", "--config", str(config)]) == 2
    assert "training.epochs: must be positive, got -1" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")


def _partitioned(tmp_path, days: dict[str, str], data: dict) -> tuple[str, str]:
    """A partitioned input (events/DAY.csv per entry of `days`: its whole text) and a config reading it."""
    root = tmp_path / "data"
    (root / "events").mkdir(parents=True)
    (root / "items.csv").write_text(ITEMS)
    for day, text in days.items():
        (root / "events" / f"{day}.csv").write_text(text)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"),
                                      "data": {"source": "csv", "path": str(root), **data}}))
    return str(root), str(config)


DAY_ROWS = "user_id,item_id,timestamp,clicked,rating\nu1,i1,1650844800,1,4\n"


@pytest.mark.parametrize(("days", "argv", "message"), [
    ({"2022-04-24": DAY_ROWS, "2022-04-26": DAY_ROWS}, ["--data-day", "2022-04-26"],
     "the window 2022-04-24..2022-04-26 has no file for 2022-04-25"),
    ({"2022-04-24": DAY_ROWS, "2022-04-25": DAY_ROWS, "2022-04-26": DAY_ROWS.replace("rating", "stars")}, [],
     "2022-04-26.csv: header differs from"),
    ({"2022-04-25": DAY_ROWS}, ["--data-day", "25/04/2022"], "--data-day: invalid configuration:\n  data.day: must "
                                                             "be a date YYYY-MM-DD, got '25/04/2022'"),
])
def test_window_faults_name_the_day_before_the_pipeline(tmp_path, capsys, days, argv, message):
    _, config = _partitioned(tmp_path, days, {"window_days": 3})
    code = cli.main(["run", "--config", config, *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "out" / local_runner.SUMMARY_FILE)


def test_data_day_needs_a_window(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out")}))
    assert cli.main(["run", "--config", str(config), "--data-day", "2022-04-26"]) == 2
    assert "data.day: the last day of a window; set data.window_days too" in capsys.readouterr().err


def test_partition_days_writes_one_file_per_day(tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "events.csv").write_text(DAY_ROWS + "u1,i1,1650931200,0,2\n")
    (flat / "items.csv").write_text(ITEMS)
    assert cli.main(["partition-days", "--input", str(flat), "--output", str(tmp_path / "parts")]) == 0
    assert "wrote 2 day files, 2022-04-25 to 2022-04-26" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "parts" / "events")) == ["2022-04-25.csv", "2022-04-26.csv"]
