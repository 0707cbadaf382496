"""Push is atomic and checked: a version appears whole or not at all, a failed push leaves the previous version
the newest, a model already published is not copied twice unless its published copy was damaged."""

from __future__ import annotations

import os
import threading

import pytest
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.pusher import executor as pusher_executor
from serving import versions


def _model(directory, files: int = 3, size: int = 1000) -> str:
    """A stand-in model directory: a saved_model.pb and `files` variable files."""
    os.makedirs(directory / "variables", exist_ok=True)
    (directory / "saved_model.pb").write_bytes(b"graph")
    for index in range(files):
        (directory / "variables" / f"part-{index}").write_bytes(bytes([index % 256]) * size)
    return str(directory)


def _contents(directory: str) -> dict[str, bytes]:
    found = {}
    for folder, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, directory)] = handle.read()
    return found


def test_publish_writes_a_whole_version_with_a_manifest(tmp_path):
    source = _model(tmp_path / "model")
    version = versions.publish(source, str(tmp_path / "serving"), {"note.txt": "hello"})
    published = str(tmp_path / "serving" / version)
    assert versions.damage(published) == []
    contents = _contents(published)
    assert contents.pop("note.txt") == b"hello" and versions.MANIFEST_FILE in contents
    contents.pop(versions.MANIFEST_FILE)
    assert contents == _contents(source)
    assert os.listdir(tmp_path / "serving") == [version]  # no staging left behind


def test_versions_only_grow_even_within_one_second(tmp_path):
    source = _model(tmp_path / "model")
    published = [int(versions.publish(source, str(tmp_path / "serving"))) for _ in range(3)]
    assert published == sorted(set(published))
    assert versions.versions(str(tmp_path / "serving")) == published


def test_a_failed_push_leaves_the_previous_version_newest(tmp_path, monkeypatch):
    source = _model(tmp_path / "model")
    serving = str(tmp_path / "serving")
    first = versions.publish(source, serving)

    def copy_then_fail(src, dst):
        os.makedirs(dst)
        with open(os.path.join(dst, "saved_model.pb"), "wb") as handle:
            handle.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(versions.io_utils, "copy_dir", copy_then_fail)
    with pytest.raises(OSError, match="disk full"):
        versions.publish(source, serving)
    assert os.listdir(serving) == [first] and versions.versions(serving) == [int(first)]


def test_staging_left_by_a_push_that_died_is_invisible_and_cleaned_up(tmp_path):
    source = _model(tmp_path / "model")
    serving = tmp_path / "serving"
    (serving / f"{versions.STAGING_PREFIX}dead").mkdir(parents=True)
    (serving / f"{versions.STAGING_PREFIX}dead" / "saved_model.pb").write_bytes(b"half")
    assert versions.versions(str(serving)) == []
    version = versions.publish(source, str(serving))
    assert os.listdir(serving) == [version]


def test_damage_names_missing_added_and_changed_files(tmp_path):
    serving = str(tmp_path / "serving")
    version_dir = os.path.join(serving, versions.publish(_model(tmp_path / "model"), serving))
    os.remove(os.path.join(version_dir, "variables", "part-0"))
    with open(os.path.join(version_dir, "variables", "part-1"), "r+b") as handle:
        handle.write(b"\xff")
    with open(os.path.join(version_dir, "stray"), "wb") as handle:
        handle.write(b"x")
    assert versions.damage(version_dir) == ["variables/part-0: missing", "stray: not in the manifest",
                                            "variables/part-1: changed (size or SHA-256 differs)"]
    os.remove(os.path.join(version_dir, versions.MANIFEST_FILE))
    assert versions.damage(version_dir) == [f"{version_dir}: no {versions.MANIFEST_FILE}"]


def test_a_reader_never_sees_a_partial_version_while_pushes_run(tmp_path):
    """Push while serving: a watcher lists the directory as a server would, during 15 pushes of a 200-file model;
    every version it ever sees is complete."""
    source = _model(tmp_path / "model", files=200, size=20_000)
    expected = _contents(source)
    serving = str(tmp_path / "serving")
    os.makedirs(serving)
    partial, seen, done = [], set(), threading.Event()

    def watch():
        while not done.is_set():
            for version in versions.versions(serving):
                found = _contents(os.path.join(serving, str(version)))
                found = {name: data for name, data in found.items()
                         if name not in (versions.MANIFEST_FILE, "note.txt")}
                seen.add(version)
                if found != expected:
                    partial.append((version, len(found)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(15):
            versions.publish(source, serving, {"note.txt": "x"})
    finally:
        done.set()
        watcher.join()
    assert partial == [] and len(seen) >= 2


def _push(tmp_path, model_dir: str, blessed: bool = True):
    model = standard_artifacts.Model()
    model.uri = model_dir
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("blessed", int(blessed))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / f"pushed-{len(os.listdir(tmp_path))}")
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(tmp_path / "serving")))
    pusher_executor.Executor().Do(
        {standard_component_specs.MODEL_KEY: [model], standard_component_specs.MODEL_BLESSING_KEY: [blessing]},
        {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
        {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)})
    return pushed


def test_pusher_publishes_once_and_again_only_after_damage(tmp_path):
    model_dir = _model(tmp_path / "model" / "Format-Serving")
    first = _push(tmp_path, os.path.dirname(model_dir))
    version = first.get_string_custom_property("pushed_version")
    assert first.get_int_custom_property("pushed") == 1
    again = _push(tmp_path, os.path.dirname(model_dir))  # the same model: the newest version is reported
    assert again.get_string_custom_property("pushed_version") == version
    assert versions.versions(str(tmp_path / "serving")) == [int(version)]
    with open(tmp_path / "serving" / version / "variables" / "part-2", "ab") as handle:
        handle.write(b"!")  # damaged after publishing
    repaired = _push(tmp_path, os.path.dirname(model_dir))
    new_version = repaired.get_string_custom_property("pushed_version")
    assert int(new_version) > int(version)
    assert versions.damage(str(tmp_path / "serving" / new_version)) == []


def test_an_unblessed_model_is_not_pushed(tmp_path):
    pushed = _push(tmp_path, os.path.dirname(_model(tmp_path / "model" / "Format-Serving")), blessed=False)
    assert pushed.get_int_custom_property("pushed") == 0
    assert not os.path.exists(tmp_path / "serving")


@pytest.mark.parametrize("retrieval_blessed", [True, False])
def test_the_pusher_requires_the_retrieval_evaluations_blessing(tmp_path, retrieval_blessed):
    from components.artifacts import RetrievalEvaluation

    def blessing(artifact_type, blessed: int):
        artifact = artifact_type()
        artifact.uri = str(tmp_path / artifact_type.TYPE_NAME)
        artifact.set_int_custom_property("blessed", blessed)
        return [artifact]

    inputs = {standard_component_specs.MODEL_BLESSING_KEY: blessing(standard_artifacts.ModelBlessing, 1),
              standard_component_specs.INFRA_BLESSING_KEY: blessing(standard_artifacts.InfraBlessing, 1),
              pusher_executor.RETRIEVAL_EVALUATION_KEY: blessing(RetrievalEvaluation, int(retrieval_blessed))}
    assert pusher_executor.Executor().CheckBlessing(inputs) is retrieval_blessed
