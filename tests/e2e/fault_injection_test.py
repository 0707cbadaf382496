"""A run killed during Trainer resumes from ML Metadata's cached artifacts when started again, and what it
pushes is the model of a finished Trainer, never the killed one's half-written output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import yaml
from ml_metadata.proto import metadata_store_pb2

from pipeline import local_runner, run_summary
from serving import versions
from tests.e2e.local_e2e_test import small_run_config


def _executions(metadata: str, component: str) -> list:
    store = run_summary.open_store(metadata)
    types = {t.id: t.name for t in store.get_execution_types()}
    return [e for e in store.get_executions() if types[e.type_id].endswith(component)]


def _model_dirs(output_dir) -> list[str]:
    root = output_dir / "pipeline_root" / "Trainer" / "model"
    return sorted(os.listdir(root)) if root.is_dir() else []


def test_a_run_killed_during_training_resumes_from_the_cache(tmp_path):
    output_dir = tmp_path / "out"
    config = small_run_config(str(output_dir))
    config["training"]["epochs"] = 30  # long enough to be killed in the middle of it
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    mtrec = os.path.join(os.path.dirname(sys.executable), "mtrec")
    run = subprocess.Popen([mtrec, "run", "--config", str(path)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not _model_dirs(output_dir) and run.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert run.poll() is None, "the run ended before its Trainer started"
    time.sleep(5)  # inside the Trainer: a few epochs in
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert not (output_dir / local_runner.SUMMARY_FILE).exists()  # no summary: the run did not finish
    metadata = str(output_dir / "metadata.sqlite")
    [killed] = _executions(metadata, "Trainer")
    assert killed.last_known_state == metadata_store_pb2.Execution.RUNNING
    killed_output = _model_dirs(output_dir)

    result = subprocess.run([mtrec, "run", "--config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((output_dir / local_runner.SUMMARY_FILE).read_text())
    assert summary["status"] == "succeeded" and summary["pushed"] is True, summary["failed_checks"]

    # Everything before the Trainer came from the cache: one execution that ran, one that was a cache hit.
    for component in ("EventsExampleGen", "StatisticsGen", "Transform"):
        states = sorted(e.last_known_state for e in _executions(metadata, component))
        assert states == sorted([metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED]), \
            component
    # The Trainer ran again from the start; the killed execution's output is neither reused nor pushed.
    trainers = _executions(metadata, "Trainer")
    assert sorted(e.last_known_state for e in trainers) == sorted(
        [metadata_store_pb2.Execution.RUNNING, metadata_store_pb2.Execution.COMPLETE])
    assert not any(summary["model"].endswith(f"/{name}") for name in killed_output)
    pushed = summary["pushed_to"]
    assert versions.damage(pushed) == []
    with open(os.path.join(pushed, "mtrec_source_model.txt"), encoding="utf-8") as handle:
        assert handle.read().startswith(summary["model"])
