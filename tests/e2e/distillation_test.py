"""A student distilled from the run's own blessed teacher, through `mtrec run`: asking for the latest blessed teacher
before one exists fails with what to do; a teacher run blesses one; the distillation run trains a smaller student
on the raw examples with the teacher's outputs, evaluates it against that teacher and reports the two side by
side."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from models import distillation, trainer
from pipeline import local_runner, run_summary
from tests.e2e.local_e2e_test import small_run_config

MTREC = os.path.join(os.path.dirname(sys.executable), "mtrec")


def _run(config: dict, path: str) -> subprocess.CompletedProcess:
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle)
    return subprocess.run([MTREC, "run", "--config", path], capture_output=True, text=True)


def _summary(output_dir: str) -> dict:
    with open(os.path.join(output_dir, local_runner.SUMMARY_FILE), encoding="utf-8") as handle:
        return json.load(handle)


@pytest.mark.slow
def test_a_student_is_distilled_from_the_runs_own_blessed_teacher(tmp_path):
    output_dir = str(tmp_path / "out")
    teacher_config = small_run_config(output_dir)
    student_config = {**teacher_config, "distillation": {
        "teacher": "latest_blessed", "student": {"embedding_dim": 16, "text_encoder": {"mode": "off"}}}}

    # No blessed model yet: refused before anything runs, saying what to do.
    early = _run(student_config, str(tmp_path / "student.yaml"))
    assert early.returncode != 0
    assert "has no blessed model yet. Run once without `distillation`" in early.stderr
    assert "Traceback" not in early.stderr
    assert not os.path.exists(os.path.join(output_dir, "pipeline_root"))

    teacher_run = _run(teacher_config, str(tmp_path / "teacher.yaml"))
    assert teacher_run.returncode == 0, teacher_run.stderr[-3000:]
    teacher = _summary(output_dir)
    assert teacher["blessed"] is True and "distillation" not in teacher

    student_run = _run(student_config, str(tmp_path / "student.yaml"))
    assert student_run.returncode == 0, student_run.stderr[-3000:]
    student = _summary(output_dir)
    # The student learnt from the blessed teacher's SavedModel, on every task, and is smaller: no text encoder.
    record = distillation.read_record(student["model"])
    assert record["teacher"] == os.path.join(teacher["model"], "Format-Serving")
    assert record["soft_targets"] == ["retrieval", "click", "rating", "purchase"]
    distilled = student["distillation"]
    assert distilled["teacher_is_baseline"] is True
    assert distilled["student_mb"] < distilled["teacher_mb"]
    model_run = os.path.join(output_dir, "pipeline_root", "Trainer", "model_run", os.path.basename(student["model"]))
    with open(os.path.join(model_run, trainer.TRAINING_LOG_FILE), encoding="utf-8") as handle:
        last_epoch = json.load(handle)[-1]
    for task in record["soft_targets"]:
        assert last_epoch[f"{task}_soft_loss"] > 0 and last_epoch[f"val_{task}_soft_loss"] > 0
    # Evaluated and gated like any model, against its teacher, the latest blessed model.
    assert student["metrics"]["click"]["auc"] > 0.6  # the random ranker's is 0.5
    assert student["baseline_metrics"]["click"]["auc"] == teacher["metrics"]["click"]["auc"]
    gates_held = student["blessed"] and student["retrieval"]["blessed"] and student["serving_check"]["passed"]
    assert student["pushed"] is gates_held
    assert json.loads(student_run.stdout)["distillation"]["teacher"] == record["teacher"]  # what the CLI prints
    with open(os.path.join(output_dir, "report.html"), encoding="utf-8") as handle:
        page = handle.read()
    assert "Distilled student" in page and "<th>teacher</th>" in page
    assert run_summary.format_summary(student).count("of the baseline (the teacher, latest blessed model)") == 3
