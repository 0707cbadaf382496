"""Runs a compiled KFP v2 pipeline spec on this machine the way a KFP backend runs it in pods, with no cluster.

For each task of the root DAG, in dependency order:

- a container task: its ExecutorInput is built from the spec (parameter values from the task's constants, input
  artifacts from the producers' outputs, output artifacts with a URI under the pipeline root and the type of the
  component's output definition, and the executor output file), `{{$}}` in its arguments is replaced by that
  ExecutorInput as JSON, and its `command` + `args` run as a subprocess whose `python` is this environment's. The
  artifacts the executor writes to its output file (with their metadata) are what downstream tasks receive.
  Output URIs are created as directories first, as an object store behaves as if every prefix existed.
- a resolver task: its artifact queries (`schema_title=... AND state=LIVE AND metadata.k.number_value=1 AND
  name="{{$.inputs.artifacts['input'].metadata['k']}}"`) run against the artifacts of earlier runs of the same
  pipeline root, which stand in for ML Metadata; the latest match is the output, or nothing (e.g. no blessed model
  on a first run). A resolver has no upstream tasks, so on a cluster it runs before this run wrote anything.

Caching and output parameters are not emulated: every task runs, and TFX's tasks pass artifacts only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import yaml
from google.protobuf import json_format, struct_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

METADATA_FILE = "local_kfp_metadata.json"  # under the pipeline root: every artifact a run recorded, in order
_PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.artifacts\['(?P<input>[^']+)'\]\.metadata\['(?P<key>[^']+)'\]\}\}")


class TaskFailedError(RuntimeError):
    """A task's container exited with an error; the message names the task and ends with its log."""


@dataclasses.dataclass
class Run:
    """`order`: the tasks as they ran. `outputs`: task -> output key -> its artifacts (RuntimeArtifact dicts).
    `inputs`: task -> the ExecutorInput its container received (resolver tasks have none)."""

    order: list[str]
    outputs: dict[str, dict[str, list[dict[str, Any]]]]
    inputs: dict[str, dict[str, Any]]


def load(spec_path: str) -> tuple[pipeline_spec_pb2.PipelineSpec, str | None]:
    """(pipeline spec, pipeline root of a PipelineJob's runtime config, or None for a bare PipelineSpec)."""
    with open(spec_path, encoding="utf-8") as handle:
        document = json.load(handle) if spec_path.endswith(".json") else yaml.safe_load(handle)
    root = None
    if "pipelineSpec" in document:
        root = document.get("runtimeConfig", {}).get("gcsOutputDirectory")
        document = document["pipelineSpec"]
    return json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec()), root


def topological_order(spec: pipeline_spec_pb2.PipelineSpec) -> list[str]:
    """The root DAG's tasks, each after every task it depends on; ties in name order."""
    tasks = spec.root.dag.tasks
    order: list[str] = []
    while len(order) < len(tasks):
        ready = sorted(name for name, task in tasks.items()
                       if name not in order and set(task.dependent_tasks) <= set(order))
        if not ready:
            raise ValueError(f"dependency cycle among {sorted(set(tasks) - set(order))}")
        order.append(ready[0])
    return order


def run(spec_path: str, work_dir: str, pipeline_root: str | None = None) -> Run:
    """Runs every task of the spec; raises TaskFailedError at the first task that fails."""
    spec, job_root = load(spec_path)
    pipeline_root = pipeline_root or job_root
    if not pipeline_root:
        raise ValueError(f"{spec_path}: a PipelineSpec without a runtime config needs a pipeline root")
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    metadata_path = os.path.join(pipeline_root, METADATA_FILE)
    earlier = _read_json(metadata_path, [])
    run_id = f"local-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    result = Run([], {}, {})
    for name in topological_order(spec):
        task = spec.root.dag.tasks[name]
        component = spec.components[task.component_ref.name]
        executor = executors[component.executor_label]
        inputs = _input_artifacts(task, result.outputs)
        if "resolver" in executor:
            result.outputs[name] = _resolve(executor["resolver"], inputs, earlier)
        else:
            executor_input = _executor_input(name, task, component, inputs, pipeline_root, run_id)
            result.inputs[name] = json_format.MessageToDict(executor_input)
            result.outputs[name] = _run_container(name, executor["container"], executor_input, work_dir)
            _append_json(metadata_path, [
                {**artifact, "schemaTitle": _schema_title(component.output_definitions.artifacts[key])}
                for key, artifacts in result.outputs[name].items() for artifact in artifacts])
        result.order.append(name)
    return result


def _input_artifacts(task, outputs: dict[str, dict[str, list[dict]]]) -> dict[str, list[dict]]:
    inputs = {}
    for key, spec in task.inputs.artifacts.items():
        if spec.WhichOneof("kind") != "task_output_artifact":
            raise NotImplementedError(f"input artifact {key!r}: only task outputs are supported, got {spec}")
        producer = spec.task_output_artifact
        inputs[key] = outputs[producer.producer_task].get(producer.output_artifact_key, [])
    return inputs


def _executor_input(name: str, task, component, inputs: dict[str, list[dict]], pipeline_root: str,
                    run_id: str) -> pipeline_spec_pb2.ExecutorInput:
    executor_input = pipeline_spec_pb2.ExecutorInput()
    for key, parameter in task.inputs.parameters.items():
        if not parameter.runtime_value.HasField("constant"):
            raise NotImplementedError(f"{name}: parameter {key!r} is not a constant: {parameter}")
        executor_input.inputs.parameter_values[key].CopyFrom(parameter.runtime_value.constant)
    for key, artifacts in inputs.items():
        if artifacts:  # an input that resolved to nothing is left out
            definition = component.input_definitions.artifacts[key]
            artifact_list = executor_input.inputs.artifacts[key]
            for artifact in artifacts:
                runtime_artifact = json_format.ParseDict(artifact, pipeline_spec_pb2.RuntimeArtifact())
                runtime_artifact.type.CopyFrom(definition.artifact_type)
                artifact_list.artifacts.append(runtime_artifact)
    task_root = os.path.join(pipeline_root, run_id, name)
    for key, definition in component.output_definitions.artifacts.items():
        uri = os.path.join(task_root, key)
        os.makedirs(uri, exist_ok=True)
        executor_input.outputs.artifacts[key].artifacts.append(pipeline_spec_pb2.RuntimeArtifact(
            name=f"local/{run_id}/{name}/{key}", uri=uri, type=definition.artifact_type,
            metadata=struct_pb2.Struct()))
    executor_input.outputs.output_file = os.path.join(task_root, "executor_output.json")
    return executor_input


def _run_container(name: str, container: dict, executor_input: pipeline_spec_pb2.ExecutorInput,
                   work_dir: str) -> dict[str, list[dict]]:
    serialized = json_format.MessageToJson(executor_input)
    args = [arg.replace("{{$}}", serialized) for arg in container.get("args", [])]
    for arg in args:
        if "{{$" in arg:
            raise NotImplementedError(f"{name}: unsupported placeholder in argument {arg[:200]!r}")
    # The image's `python` is this environment's; the working directory is not the repository, as in a pod.
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    log_path = os.path.join(work_dir, "logs", f"{name}.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        result = subprocess.run(container["command"] + args, cwd=work_dir, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    if result.returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            tail = log.read()[-4000:]
        raise TaskFailedError(f"task {name} exited with {result.returncode}; log {log_path}:\n{tail}")
    declared = {key: json_format.MessageToDict(artifacts)["artifacts"]
                for key, artifacts in executor_input.outputs.artifacts.items()}
    written = {key: artifacts["artifacts"] for key, artifacts in
               _read_json(executor_input.outputs.output_file, {}).get("artifacts", {}).items()}
    # What the executor reported (uri, name, metadata) replaces what was declared, as the backend records it.
    return {key: [{field: value for field, value in artifact.items() if field != "type"}
                  for artifact in written.get(key, artifacts)] for key, artifacts in declared.items()}


def _resolve(resolver: dict, inputs: dict[str, list[dict]], earlier: list[dict]) -> dict[str, list[dict]]:
    outputs = {}
    for key, query in resolver["outputArtifactQueries"].items():
        matches = [artifact for artifact in earlier if _matches(artifact, query["filter"], inputs)]
        outputs[key] = [{field: value for field, value in matches[-1].items() if field != "schemaTitle"}] \
            if matches else []
    return outputs


def _matches(artifact: dict, query: str, inputs: dict[str, list[dict]]) -> bool:
    """Whether `artifact` satisfies every clause of the ML Metadata filter `query`."""
    for clause in query.split(" AND "):
        field, _, expected = clause.partition("=")
        for placeholder in _PLACEHOLDER.finditer(expected):
            source = inputs.get(placeholder["input"], [])
            if not source or placeholder["key"] not in source[0].get("metadata", {}):
                return False  # the query names an input that resolved to nothing
            expected = expected.replace(placeholder[0], str(source[0]["metadata"][placeholder["key"]]))
        expected = expected.strip('"')
        if field == "schema_title":
            actual = artifact["schemaTitle"]
        elif field == "state":
            actual = "LIVE"  # nothing here deletes or abandons artifacts
        elif field == "name":
            actual = artifact.get("name")
        elif field.startswith("metadata."):
            _, key, kind = field.split(".")
            value = artifact.get("metadata", {}).get(key)
            actual, expected = (value, float(expected)) if kind == "number_value" else (value, expected)
        else:
            raise NotImplementedError(f"resolver filter field {field!r} in {query!r}")
        if actual != expected:
            return False
    return True


def _schema_title(definition) -> str:
    artifact_type = definition.artifact_type
    if artifact_type.WhichOneof("kind") == "schema_title":
        return artifact_type.schema_title
    return yaml.safe_load(artifact_type.instance_schema)["title"]


def _read_json(path: str, default: Any) -> Any:
    if not os.path.isfile(path):
        return default
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _append_json(path: str, entries: list[dict]) -> None:
    recorded = _read_json(path, [])
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(recorded + entries, handle, indent=1)
