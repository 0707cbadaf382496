"""Daily runs over partitioned logs: the first day trains from scratch, the same window again comes from the
cache, and the next day's run warm-starts from the blessed model; killed in its Trainer, it resumes and still
carries from that model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from ml_metadata.proto import metadata_store_pb2

from models import trainer
from pipeline import local_runner, run_summary
from pipeline.config import SyntheticConfig
from pipeline.data import partitions, synthetic
from tests.e2e.fault_injection_test import _executions
from tests.e2e.local_e2e_test import small_run_config

COMPLETE, CACHED, RUNNING = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED,
                             metadata_store_pb2.Execution.RUNNING)
MTREC = os.path.join(os.path.dirname(sys.executable), "mtrec")


def _run(config_path: str, day: str) -> dict:
    """The summary of a finished run. Whether the model is pushed is left to the gates: on this small data one more
    epoch moves the click AUC by about 0.02 either way, the change threshold's size."""
    result = subprocess.run([MTREC, "run", "--config", config_path, "--data-day", day], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(os.path.dirname(config_path), "out", local_runner.SUMMARY_FILE), encoding="utf-8") as f:
        summary = json.load(f)
    assert summary["status"] == "succeeded", summary
    return summary


def _evaluator_baseline(metadata: str) -> str:
    """The model the latest Evaluator execution compared with (its `baseline_model` input)."""
    store = run_summary.open_store(metadata)
    [*_, evaluator] = _executions(metadata, "Evaluator")
    inputs = [event.artifact_id for event in store.get_events_by_execution_ids([evaluator.id])
              if event.type == metadata_store_pb2.Event.INPUT and event.path.steps[0].key == "baseline_model"]
    [artifact] = store.get_artifacts_by_id(inputs)
    return artifact.uri


def _model_run(summary: dict, name: str) -> str:
    """A file of the model's ModelRun artifact (the Trainer's execution writes both under one id)."""
    root = os.path.join(summary["output_dir"], "pipeline_root", "Trainer", "model_run")
    return os.path.join(root, os.path.basename(summary["model"]), name)


def _states(metadata: str, component: str) -> list[int]:
    return [execution.last_known_state for execution in _executions(metadata, component)]


@pytest.mark.slow
def test_each_day_warm_starts_from_the_last_blessed_model(tmp_path):
    synthetic.generate(str(tmp_path / "log"), SyntheticConfig(num_users=150, num_items=60, events_per_user=20))
    days = partitions.write_daily(str(tmp_path / "log"), str(tmp_path / "data"))
    config = small_run_config(str(tmp_path / "out"))
    config["data"] = {"source": "csv", "path": str(tmp_path / "data"), "window_days": 120}
    config["evaluation"] = {}  # the csv source's default tasks: retrieval, click, rating
    config["training"].update(warm_start=True, warm_start_epochs=1)
    config_path = str(tmp_path / "config.yaml")
    with open(config_path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle)
    metadata = str(tmp_path / "out" / "metadata.sqlite")

    # Day one: nothing is blessed yet, so the model trains from scratch for `epochs`.
    first = _run(config_path, days[-3])
    assert first["pushed"] is True, first["failed_checks"]
    assert first["input"]["window"]["days"][-1] == days[-3] and len(first["input"]["window"]["days"]) == 120
    assert not os.path.exists(_model_run(first, trainer.WARM_START_FILE))
    with open(_model_run(first, trainer.TRAINING_LOG_FILE), encoding="utf-8") as handle:
        assert len(json.load(handle)) == config["training"]["epochs"]

    # The same window again: the examples, statistics and Transform graph come from the cache (the Trainer trains
    # one more epoch, from the model just blessed).
    _run(config_path, days[-3])
    for component in ("EventsExampleGen", "StatisticsGen", "Transform"):
        assert sorted(_states(metadata, component)) == sorted([COMPLETE, CACHED]), component
    rerun = json.loads((tmp_path / "out" / local_runner.SUMMARY_FILE).read_text())
    latest_blessed = rerun["model"] if rerun["blessed"] else first["model"]

    # Day two, killed in its Trainer, then run again.
    run = subprocess.Popen([MTREC, "run", "--config", config_path, "--data-day", days[-2]],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 900
    while RUNNING not in _states(metadata, "Trainer") and run.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert run.poll() is None, "day two ended before its Trainer started"
    time.sleep(3)  # the Trainer sets up (datasets, model, the carry) for longer than this
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    second = _run(config_path, days[-2])
    assert second["input"]["window"]["days"][-1] == days[-2]
    # A new day is a new ExampleGen execution; the resumed run took the killed run's examples from the cache.
    assert sorted(_states(metadata, "EventsExampleGen")) == sorted([COMPLETE, CACHED, COMPLETE, CACHED])
    assert RUNNING in _states(metadata, "Trainer")  # the killed one
    store = run_summary.open_store(metadata)
    examples = [artifact for artifact in store.get_artifacts_by_type("Examples")
                if "/EventsExampleGen/" in artifact.uri]  # not Transform's
    assert [artifact.custom_properties["span"].int_value for artifact in examples] == [
        first["input"]["window"]["span"], second["input"]["window"]["span"]]
    assert json.loads(examples[-1].custom_properties["mtrec_window"].string_value)["days"][-1] == days[-2]
    with open(_model_run(second, trainer.WARM_START_FILE), encoding="utf-8") as handle:
        carried = json.load(handle)
    assert carried["base_dir"] == latest_blessed  # the blessed model, not the killed run's half output
    assert second["warm_start"] == carried and "warm_start" not in first  # the run summary shows it
    with open(second["report"], encoding="utf-8") as handle:
        page = handle.read()
    assert "<h3>Warm start</h3>" in page and f"{second['input']['window']['days'][0]}..{days[-2]} (120 days)" in page
    assert _evaluator_baseline(metadata) == latest_blessed  # the change thresholds compare with the same model
    users = carried["tables"]["user_id_embedding"]
    assert users["known"] > 100 and users["new"] >= 0 and not carried["not_carried"]
    with open(_model_run(second, trainer.TRAINING_LOG_FILE), encoding="utf-8") as handle:
        assert len(json.load(handle)) == config["training"]["warm_start_epochs"]
