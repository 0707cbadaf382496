"""The local runner's pieces: progress lines, the code fingerprint in the cache key, data preparation."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile

from pipeline import config as config_lib
from pipeline import local_runner


def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("absl", level, __file__, 1, message, (), None)


def test_progress_lines_count_components_and_time_them(capsys):
    handler = local_runner._ProgressHandler(total=2)
    for message in ("Component Transform is running.", "Going to run a new execution 7",
                    "Component Transform is finished.", "Component Trainer is running."):
        handler.emit(_record(message))
    handler.emit(_record("Execution 8 failed.", logging.ERROR))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "mtrec: [1/2] Transform running"
    assert re.fullmatch(r"mtrec: \[1/2\] Transform done \(\d+ s\)", lines[1])
    assert lines[2:] == ["mtrec: [2/2] Trainer running", "mtrec: Execution 8 failed."]


def test_code_version_is_stable_and_reaches_every_component_running_mtrec_code(tmp_path):
    assert local_runner.code_version() == local_runner.code_version()
    assert re.fullmatch(r"[0-9a-f]{16}", local_runner.code_version())
    config = config_lib.RunConfig(output_dir=str(tmp_path))
    pipeline = local_runner.build_pipeline(config, str(tmp_path), str(tmp_path / "root"), str(tmp_path / "serving"),
                                           local_runner.stage_schema(str(tmp_path), config), None)
    by_id = {component.id: component for component in pipeline.components}
    version = local_runner.code_version()
    assert by_id["EventsExampleGen"].exec_properties["code_version"] == version
    for component in ("Transform", "Trainer"):
        assert f'"code_version": "{version}"' in by_id[component].exec_properties["custom_config"]


def _components(config: config_lib.RunConfig, tmp_path) -> dict:
    pipeline = local_runner.build_pipeline(config, str(tmp_path), str(tmp_path / "root"), str(tmp_path / "serving"),
                                           local_runner.stage_schema(str(tmp_path), config), None)
    return {component.id: component for component in pipeline.components}


def test_a_distilling_trainer_reads_raw_examples_and_the_latest_blessed_model_as_its_teacher(tmp_path):
    plain = _components(config_lib.RunConfig(output_dir=str(tmp_path)), tmp_path)
    assert plain["Trainer"].inputs["examples"].producer_component_id == "Transform"
    assert "base_model" not in plain["Trainer"].inputs and "transformed_examples" in plain["Transform"].outputs
    assert json.loads(plain["Trainer"].exec_properties["custom_config"])["distillation"] is None
    config = config_lib.from_dict({"output_dir": str(tmp_path), "distillation": {
        "teacher": "latest_blessed", "student": {"embedding_dim": 8, "text_encoder": {"mode": "off"}}}})
    by_id = _components(config, tmp_path)
    trainer = by_id["Trainer"]
    assert trainer.inputs["examples"].producer_component_id == "EventsExampleGen"
    assert trainer.inputs["base_model"].producer_component_id == "latest_blessed_model_resolver"
    assert "transformed_examples" not in by_id["Transform"].outputs  # nothing would read them
    custom = json.loads(trainer.exec_properties["custom_config"])
    assert custom["model"]["embedding_dim"] == 8 and custom["text_encoder"]["mode"] == "off"
    assert custom["require_text"] is False  # the student reads no text; ExampleGen still checks it for the teacher
    assert by_id["EventsExampleGen"].exec_properties["require_text"] in (True, 1)
    assert custom["distillation"] == {"teacher": "latest_blessed", "hard_weight": 1.0, "soft_weight": 1.0,
                                      "temperature": 2.0, "student": {"embedding_dim": 8,
                                                                      "text_encoder": {"mode": "off"}}}


def test_a_teacher_path_is_handed_to_the_trainer_as_an_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "saved_model.pb").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    config = config_lib.from_dict({"output_dir": str(tmp_path), "distillation": {"teacher": "teacher"}})
    trainer = _components(config, tmp_path)["Trainer"]
    assert "base_model" not in trainer.inputs
    assert json.loads(trainer.exec_properties["custom_config"])["distillation"]["teacher"] == str(tmp_path / "teacher")


def test_identical_regenerated_data_is_kept_in_place(tmp_path):
    """So that the cache, which fingerprints input files, stays valid across runs of the same config."""
    config = config_lib.RunConfig(output_dir=str(tmp_path))
    config.data.synthetic = config_lib.SyntheticConfig(num_users=5, num_items=5, events_per_user=4)
    paths = local_runner.RunPaths(str(tmp_path))
    first = local_runner.prepare_data(config, paths)
    before = os.stat(os.path.join(first, "events.csv")).st_mtime_ns
    local_runner.prepare_data(config, paths)
    assert os.stat(os.path.join(first, "events.csv")).st_mtime_ns == before
    assert not os.path.exists(paths.data + ".partial")


def test_schema_is_staged_with_the_comparators_under_its_content_hash(tmp_path):
    import hashlib

    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    config = config_lib.RunConfig(validation=config_lib.Validation(
        drift={"rating": 0.3, "categories": 0.2}, skew={"clicked": 0.1}))
    staged = local_runner.stage_schema(str(tmp_path), config)
    with open(staged, encoding="utf-8") as copy:
        content = copy.read()
    features = {feature.name: feature for feature in text_format.Parse(content, schema_pb2.Schema()).feature}
    assert features["rating"].drift_comparator.jensen_shannon_divergence.threshold == 0.3  # numeric
    assert features["categories"].drift_comparator.infinity_norm.threshold == 0.2  # categorical
    assert features["clicked"].skew_comparator.infinity_norm.threshold == 0.1  # a categorical int
    assert not features["user_id"].HasField("drift_comparator")
    assert staged == str(tmp_path / "schema" / hashlib.sha256(content.encode()).hexdigest()[:16] / "schema.pbtxt")
    assert local_runner.staged_schema_path(str(tmp_path), config) == staged
    assert local_runner.stage_schema(str(tmp_path), config) == staged  # same content, same path
    other = local_runner.stage_schema(str(tmp_path), config_lib.RunConfig(
        validation=config_lib.Validation(drift={"rating": 0.5})))
    assert other != staged  # new thresholds, new schema input: the cache cannot serve the old one


def test_the_schema_declares_every_label_column_with_its_domain(tmp_path):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    config = config_lib.from_dict({"model": {"tasks": [
        {"name": "click", "type": "binary", "label": "is_click"},
        {"name": "like", "type": "binary", "label": "is_like", "given": "click"},
        {"name": "watch", "type": "regression", "label": "watch_ratio", "label_range": [0, 10]},
        {"name": "time", "type": "regression", "label": "play_seconds", "label_transform": "log1p"}]},
        "validation": {"drift": {"is_like": 0.05}, "skew": {}}})
    with open(local_runner.stage_schema(str(tmp_path), config), encoding="utf-8") as handle:
        schema = {feature.name: feature for feature in text_format.Parse(handle.read(), schema_pb2.Schema()).feature}
    assert "clicked" not in schema and "rating" not in schema  # only the declared labels
    for binary in ("is_click", "is_like"):
        assert schema[binary].type == schema_pb2.INT
        assert (schema[binary].int_domain.min, schema[binary].int_domain.max) == (0, 1)
        assert schema[binary].int_domain.is_categorical and schema[binary].presence.min_fraction == 1.0
    assert schema["is_like"].drift_comparator.infinity_norm.threshold == 0.05
    assert schema["watch_ratio"].type == schema_pb2.FLOAT
    assert (schema["watch_ratio"].float_domain.min, schema["watch_ratio"].float_domain.max) == (0, 10)
    assert schema["play_seconds"].float_domain.min == 0 and not schema["play_seconds"].float_domain.HasField("max")


def test_quiet_mode_prints_nothing_of_tfx_logs(capsys):
    local_runner._configure_logging(verbose=False, progress=False, num_components=3)
    logger = logging.getLogger("absl")
    logger.warning("ArtifactQuery.property_predicate is not supported.")
    logger.info("Component Transform is running.")
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    local_runner._configure_logging(verbose=False, progress=True, num_components=3)
    logger.info("Component Transform is running.")
    assert capsys.readouterr().err == "mtrec: [1/3] Transform running\n"


def test_a_run_keeps_its_temporary_files_in_a_directory_of_its_own_and_removes_it():
    before, before_env = tempfile.gettempdir(), os.environ.get("TMPDIR")
    with local_runner._temporary_directory():
        inner = tempfile.mkdtemp()  # as TFX's packaging of itself and Beam's staging do
        worker = subprocess.run([sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"],
                                capture_output=True, text=True, check=True).stdout.strip()
        run_directory = tempfile.gettempdir()
    assert os.path.basename(run_directory).startswith("mtrec-run-")
    assert os.path.dirname(inner) == worker == run_directory  # Beam's worker processes too
    assert not os.path.exists(run_directory)
    assert tempfile.gettempdir() == before and os.environ.get("TMPDIR") == before_env


def test_the_schema_declares_every_declared_column_by_type(tmp_path):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    config = config_lib.from_dict({"features": [
        {"name": "device"}, {"name": "tags", "source": "items", "type": "multi_categorical"},
        {"name": "age", "source": "users", "type": "numeric"},
        {"name": "tenure", "source": "users", "type": "numeric", "normalization": "log1p"},
        {"name": "hour", "type": "timestamp"}], "validation": {"drift": {"device": 0.3}}})
    with open(local_runner.stage_schema(str(tmp_path), config), encoding="utf-8") as handle:
        schema = {feature.name: feature for feature in text_format.Parse(handle.read(), schema_pb2.Schema()).feature}
    assert "hour" not in schema  # a timestamp part is computed from the timestamp
    for name, kind, most in (("device", schema_pb2.BYTES, 1), ("tags", schema_pb2.BYTES, 0),
                             ("age", schema_pb2.FLOAT, 1), ("tenure", schema_pb2.FLOAT, 1)):
        assert schema[name].type == kind
        assert (schema[name].value_count.min, schema[name].value_count.max) == (0, most)  # 0: no upper bound
        assert schema[name].presence.min_count == 0  # a missing value is written as none
    assert schema["tenure"].float_domain.min == 0 and not schema["age"].HasField("float_domain")
    assert schema["device"].drift_comparator.infinity_norm.threshold == 0.3
