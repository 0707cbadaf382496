"""`mtrec benchmark distillation` on small generated data: the whole run on MovieLens-format data (a teacher, a
distilled student and a label-only student, chosen, exported and timed; the teacher's outputs reach the distilled
student's batches; the report's ratios and targets are the measured figures'), and KuaiRand's own parts."""

from __future__ import annotations

import json
import math
import os
import pickle
import time

import pytest

from benchmarks import distillation, process
from components.example_gen import input_contract
from pipeline import cli
from pipeline.data import synthetic
from tests.benchmarks.kuairand_test import _write_slice

SMALL_BERT = {"num_layers": 1, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16}
ROLES = ("teacher", "label_only", "distilled")


def _in_this_process(function, *args, interval=0.2):
    """process.run_isolated without the new process: the whole run's jobs in the test's process, to keep it short
    (tests/benchmarks/process_test.py tests the processes; the KuaiRand test, that a job pickles)."""
    started = time.time()
    result = function(*args)
    return process.Measured(result, time.time() - started, process.own_peak_mb(), [])


@pytest.fixture(scope="module")
def movielens_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("distillation-movielens")
    # 150 items: more than the top 100, so top-100 accuracy tells the models apart.
    synthetic.generate(str(root / "data"), synthetic.SyntheticConfig(num_users=60, num_items=150, events_per_user=12,
                                                                     seed=3))
    settings = distillation.Settings(movielens_epochs=2, batch_size=64, learning_rate=0.01, text_backbone=SMALL_BERT,
                                     text_max_length=16, grid=((1.0, 2.0), (2.0, 1.0)), requests=5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(process, "run_isolated", _in_this_process)
        return distillation.run(str(root / "data"), str(root / "work"), settings, log=lambda line: None)


def _by_role(report):
    return {model["role"]: model for model in report["models"]}


def _check_report(report, soft_tasks):
    models = _by_role(report)
    assert [model["role"] for model in report["models"]] == list(ROLES)
    for model in models.values():
        assert 0.0 <= model["top_100_accuracy"] <= 1.0 and 0.0 < model["rmse"] < 10.0
        assert all(0.0 <= value <= 1.0 for value in model["auc"].values())
        assert model["size_bytes"] > 0 and model["peak_memory_mb"] > 100 and model["train_seconds"] > 0
        for path in distillation.PATHS:
            timing = model["latency"][path]
            assert timing["requests"] == 5 and 0 < timing["p50_ms"] <= timing["p99_ms"]
    # The teacher's outputs reached the distilled student's batches: each task's soft loss was measured on them
    # (a loss tracker that never sees a teacher column stays at 0), and the label-only student has none.
    distilled_losses, label_losses = models["distilled"]["final_epoch_losses"], models["label_only"][
        "final_epoch_losses"]
    for task in soft_tasks:
        assert distilled_losses[f"{task}_soft_loss"] > 0, task
    assert not [key for key in label_losses if key.endswith("_soft_loss")]
    # The ratios and targets are the measured figures'.
    teacher, student = models["teacher"], models["distilled"]
    assert report["ratios"]["size"] == pytest.approx(student["size_bytes"] / teacher["size_bytes"])
    for path in distillation.PATHS:
        assert report["ratios"][f"{path}_p50"] == pytest.approx(
            student["latency"][path]["p50_ms"] / teacher["latency"][path]["p50_ms"])
    targets = report["targets"]
    assert set(targets) == {"retained_top_100_lift", "size_ratio", "retrieve_p50_ratio_in_process",
                            "retrieve_p50_ratio_http", "rank_p50_ratio_in_process", "rank_p50_ratio_http"}
    for name, target in targets.items():
        assert isinstance(target["met"], bool) and "value" in target, name
        if name != "retained_top_100_lift":
            assert target["met"] == (target["value"] <= 1 / 3)
    lift = targets["retained_top_100_lift"]
    gap = teacher["top_100_accuracy"] - models["label_only"]["top_100_accuracy"]
    assert lift["teacher_lift"] == pytest.approx(gap)
    if gap:
        assert lift["value"] == pytest.approx((student["top_100_accuracy"] - models["label_only"]["top_100_accuracy"])
                                              / gap)
    else:
        assert lift["value"] is None
    assert lift["met"] == (lift["teacher_lift"] >= distillation.MIN_TEACHER_LIFT and lift["value"] >= 0.9)


def test_movielens_teacher_and_students(movielens_report, tmp_path):
    report = movielens_report
    _check_report(report, ("retrieval", "click", "rating"))
    models = _by_role(report)
    assert set(models["teacher"]["auc"]) == {"click"} and "gauc" not in models["teacher"]
    # The teacher carries the text tower, the students do not: the small BERT's token embeddings alone are
    # 30,522 x 8 floats, about 1 MB.
    assert models["teacher"]["size_bytes"] - models["distilled"]["size_bytes"] > 1e6
    # Teacher outputs for the fit split (selection, from the teacher trained on it alone) and the training split.
    outputs = {entry["split"]: entry for entry in report["teacher_outputs"]}
    assert set(outputs) == {"fit", "train"} and outputs["fit"]["teacher"] != outputs["train"]["teacher"]
    assert outputs["train"]["rows"] == report["protocol"]["train"]
    assert outputs["fit"]["rows"] == report["protocol"]["train"] - report["protocol"]["validation_from_train"]
    assert outputs["train"]["columns"] == ["teacher_click", "teacher_item_embedding", "teacher_rating",
                                           "teacher_user_embedding"]
    chosen = report["selection"]["student (distilled)"]
    assert [(c["soft_weight"], c["temperature"]) for c in chosen["candidates"]] == [(1.0, 2.0), (2.0, 1.0)]
    best = max(chosen["candidates"], key=lambda c: c["validation_score"])
    assert (models["distilled"]["soft_weight"], models["distilled"]["temperature"], models["distilled"]["epochs"]) == (
        best["soft_weight"], best["temperature"], best["epochs"])
    paths = distillation.write(report, str(tmp_path))
    assert [os.path.basename(path) for path in paths] == ["distillation-movielens-protocol-data.json",
                                                          "distillation-movielens-protocol-data.md"]
    with open(paths[0], encoding="utf-8") as handle:
        assert json.load(handle)["targets"] == json.loads(json.dumps(report["targets"]))
    with open(paths[1], encoding="utf-8") as handle:
        text = handle.read()
    assert "| student (distilled) (" in text and "| click AUC |" in text
    for name, target in report["targets"].items():
        assert f"{name}: {'met' if target['met'] else 'NOT met'}" in text


def test_kuairand_data_teacher_outputs_and_latency(tmp_path):
    """KuaiRand's own parts, without the whole run (each export of its serving graph takes half a minute): its
    days and examples, the bigger teacher, its outputs for every training row, a distilled student learning from
    them, and requests with KuaiRand's context features."""
    data = _write_slice(str(tmp_path / "raw"))
    settings = distillation.Settings(batch_size=64, learning_rate=0.01, requests=3)
    assert distillation.is_kuairand(data)
    prepared = distillation.prepare(data, str(tmp_path / "work"), settings, log=lambda line: None)
    examples = prepared.protocol["examples"]
    assert (prepared.dataset, prepared.fit, prepared.report_name) == ("kuairand", "train", "kuairand")
    assert examples == {"train": 300, "validation": 60, "test": 180}  # 60 exposures a day, 04-25..05-03
    assert 0 < prepared.protocol["top_100_pairs"] < examples["test"]

    teacher_dir = str(tmp_path / "models" / "teacher")
    config = distillation.model_config(prepared, settings.kuairand_teacher, False, settings)
    assert config["model"]["user_tower"] == "transformer" and config["model"]["embedding_dim"] == 64
    job = distillation.Job("teacher", prepared, config, "train", "test", 1, export_dir=os.path.join(teacher_dir, "1"))
    assert pickle.loads(pickle.dumps((job, settings))) == (job, settings)  # what run_job sends to its process
    teacher = distillation.train_job(job, settings)
    tasks = {"click", "long_view", "like", "follow", "comment"}
    figures = teacher["metrics"]
    assert set(figures["auc"]) == set(figures["gauc"]) == tasks and 0.0 <= figures["top_100_accuracy"] <= 1.0
    assert figures["rmse"] > 0 and teacher["size_bytes"] > 0

    (outputs,) = distillation.add_teacher_outputs(prepared, {"train": os.path.join(teacher_dir, "1")})
    assert outputs["rows"] == examples["train"]
    assert outputs["columns"] == sorted(f"teacher_{name}" for name in (*tasks, "watch_ratio", "user_embedding",
                                                                          "item_embedding"))
    student = distillation.model_config(prepared, settings.student, False, settings, (1.0, 2.0))
    result = distillation.train_job(distillation.Job("distilled", prepared, student, "train_distilled",
                                                     "validation", 1), settings)
    # Every task learns from the teacher's columns: the ESMM ones, the watch ratio and retrieval among them.
    for task in (*tasks, "watch_ratio", "retrieval"):
        assert result["final_epoch_losses"][f"{task}_soft_loss"] > 0, task

    latency = distillation.measure_latency(prepared, {"teacher": teacher_dir}, 3)
    for path in distillation.PATHS:
        assert latency["teacher"][path]["requests"] == 3 and latency["teacher"][path]["p50_ms"] > 0


def test_a_request_fills_the_inputs_it_is_not_given():
    import tensorflow as tf

    specs = {"user_id": tf.TensorSpec([None], tf.string), "tab": tf.TensorSpec([None], tf.string),
             "tags": tf.TensorSpec([None, None], tf.string), "price": tf.TensorSpec([None], tf.float32),
             "timestamp": tf.TensorSpec([None], tf.int64)}
    inputs = distillation.request_inputs(specs, {"user_id": ["u1"]})
    assert {key: value for key, value in inputs.items() if key != "price"} == {
        "user_id": ["u1"], "tab": [""], "tags": [[""]], "timestamp": [0]}
    assert math.isnan(inputs["price"][0])


def _report(teacher, label_only, distilled):
    latency = {path: {"p50_ms": 1.0} for path in distillation.PATHS}
    models = [{"role": role, "top_100_accuracy": value, "size_bytes": 10, "latency": latency}
              for role, value in zip(ROLES, (teacher, label_only, distilled), strict=True)]
    return {"models": models, "ratios": distillation.ratios(models)}


def test_retained_lift_target():
    met = distillation.targets(_report(0.60, 0.50, 0.595))["retained_top_100_lift"]
    assert met["value"] == pytest.approx(0.95) and met["met"] and "reason" not in met
    missed = distillation.targets(_report(0.60, 0.50, 0.58))["retained_top_100_lift"]
    assert missed["value"] == pytest.approx(0.8) and not missed["met"]
    # A teacher no better than the label-only student: the share is still reported, the target missed, with why.
    worse = distillation.targets(_report(0.50, 0.52, 0.53))["retained_top_100_lift"]
    assert worse["value"] == pytest.approx(-0.5) and not worse["met"] and "lift" in worse["reason"]
    tiny = distillation.targets(_report(0.501, 0.50, 0.5011))["retained_top_100_lift"]
    assert tiny["value"] > 0.9 and not tiny["met"] and "reason" in tiny
    same = distillation.targets(_report(0.5, 0.5, 0.5))
    assert same["retained_top_100_lift"]["value"] is None and not same["retained_top_100_lift"]["met"]
    assert same["size_ratio"]["value"] == 1.0 and not same["size_ratio"]["met"]


def test_the_command_needs_data_and_names_every_layout(tmp_path, capsys):
    assert cli.main(["benchmark", "distillation"]) == 2
    assert "benchmark distillation: --data DIR" in capsys.readouterr().err
    with pytest.raises(input_contract.InputError, match="nor the KuaiRand-Pure files"):
        distillation.prepare(str(tmp_path), str(tmp_path / "work"), distillation.Settings())
    assert not distillation.is_kuairand(str(tmp_path))
