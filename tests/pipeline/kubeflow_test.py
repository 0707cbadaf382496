"""`mtrec compile kubeflow`: the spec parses as a KFP pipeline spec, holds every component of the pipeline that
build_pipeline makes with its dependencies, names the image, and carries the configuration and Beam args."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import yaml
from google.protobuf import json_format, message

from components.artifacts import ValidatedStatistics
from pipeline import cli, evaluation, kubeflow, local_runner
from pipeline import config as config_lib
from tests import kfp_local

IMAGE = "europe-docker.pkg.dev/project/mtrec/pipeline:1.2"
# Non-default values in every section the components read, so that defaults cannot hide a lost setting.
CONFIG = {
    "example_gen": {"history_length": 7, "split": "random", "eval_fraction": 0.25, "seed": 3},
    "text_encoder": {"max_length": 24, "pooling": "cls",
                     "backbone": {"num_layers": 1, "num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32}},
    "model": {"architecture": "ple", "embedding_dim": 16, "expert_units": [48, 24],
              "tasks": [{"name": "retrieval", "type": "retrieval", "label": None, "weight": 0.5},
                        {"name": "click", "type": "binary", "label": "clicked", "weight": 2.0}]},
    "training": {"epochs": 2, "batch_size": 64, "learning_rate": 0.003, "seed": 5},
    "evaluation": {"min_auc": 0.55, "max_auc_decrease": 0.05},
}
RESOLVER_SUFFIXES = ("-model-blessing-resolver", "-model-resolver")


@dataclasses.dataclass
class Compiled:
    config: config_lib.RunConfig
    target: kubeflow.Options
    spec: object  # pipeline_spec_pb2.PipelineSpec
    job: dict
    pipeline: object  # the tfx Pipeline that build_pipeline made for the same options


def _compile(tmp_path, platform: str, output: str) -> Compiled:
    from kfp.pipeline_spec import pipeline_spec_pb2

    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(CONFIG))
    root, data, serving = str(tmp_path / "root"), str(tmp_path / "data"), str(tmp_path / "models")
    output_path = str(tmp_path / output)
    assert cli.main(["compile", "kubeflow", "--image", IMAGE, "--config", str(config_path), "--pipeline-root",
                     root, "--data-root", data, "--serving-dir", serving, "--platform", platform,
                     "--output", output_path]) == 0
    with open(output_path, encoding="utf-8") as handle:
        document = json.load(handle) if output.endswith(".json") else yaml.safe_load(handle)
    if output.endswith(".json"):
        # A PipelineJob, strictly parsed (no unknown fields), around the pipeline spec.
        job = json_format.ParseDict(document, pipeline_spec_pb2.PipelineJob())
        assert job.runtime_config.gcs_output_directory == root
        document = document["pipelineSpec"]
    spec = json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec())
    config = config_lib.load(str(config_path))
    target = kubeflow.options(config, IMAGE, root, data, serving, platform, output_path)
    return Compiled(config, target, spec, document, kubeflow.build(config, target))


@pytest.fixture(scope="module")
def vertex(tmp_path_factory) -> Compiled:
    return _compile(tmp_path_factory.mktemp("vertex"), "vertex", "pipeline.json")


@pytest.fixture(scope="module")
def kfp(tmp_path_factory) -> Compiled:
    return _compile(tmp_path_factory.mktemp("kfp"), "kfp", "pipeline.yaml")


def _node_id(task: str, ids: set[str]) -> str:
    """The pipeline node a task comes from: the compiler splits the latest-blessed-model Resolver in two."""
    for suffix in RESOLVER_SUFFIXES:
        if task.endswith(suffix) and task.removesuffix(suffix) in ids:
            return task.removesuffix(suffix)
    return task


def _executors(compiled: Compiled) -> dict:
    return json_format.MessageToDict(compiled.spec.deployment_spec)["executors"]


def _parameter(compiled: Compiled, task: str, name: str):
    return json_format.MessageToDict(compiled.spec.root.dag.tasks[task].inputs.parameters[name].runtime_value.constant)


@pytest.mark.parametrize("platform", ["vertex", "kfp"])
def test_spec_holds_every_component_with_its_dependencies(platform, request):
    compiled = request.getfixturevalue(platform)
    tasks = compiled.spec.root.dag.tasks
    by_id = {node.id: node for node in compiled.pipeline.components}
    assert {_node_id(task, set(by_id)) for task in tasks} == set(by_id)
    for name, task in tasks.items():
        node = by_id[_node_id(name, set(by_id))]
        upstream = {_node_id(dependency, set(by_id)) for dependency in task.dependent_tasks} - {node.id}
        assert upstream == {upstream_node.id for upstream_node in node.upstream_nodes}, name
    order = [_node_id(task, set(by_id)) for task in kfp_local.topological_order(compiled.spec)]
    assert order[0] in ("EventsExampleGen", "ImportSchemaGen") and order[-1] == "Pusher"
    assert order.index("Evaluator") > order.index("Trainer") > order.index("Transform") > order.index(
        "StatisticsGen")


def test_vertex_spec_has_the_baseline_resolvers_and_kfp_spec_none(vertex, kfp):
    """Open-source KFP's backend has no Resolver executor: its spec has only container executors, and takes
    its parameters from `constant` values (schema 2.1), which the backend reads."""
    vertex_resolvers = {name for name, executor in _executors(vertex).items()
                        if "resolver" in executor}
    assert "latest_blessed_model_resolver-model-resolver_executor" in vertex_resolvers
    assert "baseline_model" in vertex.spec.root.dag.tasks["Evaluator"].inputs.artifacts
    assert all("container" in executor for executor in _executors(kfp).values())
    assert "baseline_model" not in kfp.spec.root.dag.tasks["Evaluator"].inputs.artifacts
    for compiled in (vertex, kfp):
        assert compiled.spec.schema_version == "2.1.0"
        for task in compiled.spec.root.dag.tasks.values():
            for parameter in task.inputs.parameters.values():
                assert parameter.runtime_value.HasField("constant")


def test_every_component_runs_in_the_image_through_the_tfx_entrypoint(vertex):
    from tfx.utils import import_utils

    containers = [executor["container"] for executor in _executors(vertex).values()
                  if "container" in executor]
    assert len(containers) == len([node for node in vertex.pipeline.components
                                   if not node.id.endswith("_resolver")])
    for container in containers:
        assert container["image"] == IMAGE
        assert container["command"] == ["python", "-m", kubeflow.ENTRYPOINT_MODULE]
        # Each executor runs by import path from the installed mtrec: no module file, no staged wheel.
        executor_class = container["args"][container["args"].index("--executor_class_path") + 1]
        assert import_utils.import_class_by_path(executor_class)


def _artifact_types(compiled: Compiled) -> list:
    """Every artifact type a task's inputs or outputs name in the spec."""
    types = []
    for component in compiled.spec.components.values():
        for definitions in (component.input_definitions, component.output_definitions):
            types.extend(spec.artifact_type for spec in definitions.artifacts.values())
    return types


@pytest.mark.parametrize("platform", ["vertex", "kfp"])
def test_every_artifact_type_imports_back_in_the_pod(platform, request):
    """The pod's entrypoint rebuilds each artifact's Python class from the type in the spec alone; a custom
    type's schema title is its import path there, so a title that is not one fails only at run time."""
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils
    from tfx.utils import import_utils

    compiled = request.getfixturevalue(platform)
    classes = {import_utils.import_class_by_path(kubeflow_v2_entrypoint_utils._retrieve_class_path(artifact_type))
               for artifact_type in _artifact_types(compiled)}
    assert ValidatedStatistics in classes


def test_beam_args_are_those_build_pipeline_made(vertex):
    expected = list(vertex.pipeline.beam_pipeline_args)
    assert expected
    for executor in _executors(vertex).values():
        if "container" in executor:
            args = executor["container"]["args"]
            # After the entrypoint's own flags, each a flag and its value, come the Beam args.
            assert args[args.index("--json_serialized_inputs_spec_args") + 2:] == expected


def test_every_execution_property_reaches_the_spec(vertex):
    """Each component's properties, as build_pipeline set them, decode from the spec's parameter values."""
    for node in vertex.pipeline.components:
        if node.id.endswith("_resolver"):
            continue
        for name, value in node.exec_properties.items():
            if value is None:
                assert name not in vertex.spec.root.dag.tasks[node.id].inputs.parameters, (node.id, name)
                continue
            decoded = _parameter(vertex, node.id, name)
            if isinstance(value, message.Message):
                decoded = json_format.Parse(decoded, type(value)())
            elif isinstance(value, bool | int):
                decoded = type(value)(decoded)
            assert decoded == value, (node.id, name)


def test_configuration_round_trips_through_the_spec(vertex):
    """The configuration sections the components read come back out of the spec equal to the YAML's."""
    from tensorflow_model_analysis.proto import config_pb2

    config, target = vertex.config, vertex.target
    trainer = json.loads(_parameter(vertex, "Trainer", "custom_config"))
    example_gen = {name: _parameter(vertex, "EventsExampleGen", name) for name in CONFIG["example_gen"]}
    example_gen["history_length"] = int(example_gen["history_length"])
    example_gen["seed"] = int(example_gen["seed"])
    restored = config_lib.from_dict({"example_gen": example_gen, "model": trainer["model"],
                                     "text_encoder": trainer["text_encoder"], "training": trainer["training"]})
    for section in ("example_gen", "model", "text_encoder", "training"):
        assert getattr(restored, section) == getattr(config, section), section
    assert trainer["items_path"] == os.path.join(target.data_root, "items.csv")
    assert trainer["code_version"] == local_runner.code_version()
    transform = json.loads(_parameter(vertex, "Transform", "custom_config"))
    assert transform["tasks"] == [dataclasses.asdict(task) for task in config.model.tasks]
    assert transform["history_length"] == config.example_gen.history_length
    eval_config = json_format.Parse(_parameter(vertex, "Evaluator", "eval_config"), config_pb2.EvalConfig())
    assert eval_config == evaluation.eval_config(config.evaluation, config.model.tasks)


def test_locations_are_the_shared_ones(vertex):
    from tfx.proto import pusher_pb2

    target = vertex.target
    assert _parameter(vertex, "EventsExampleGen", "input_base") == target.data_root
    destination = json_format.Parse(_parameter(vertex, "Pusher", "push_destination"), pusher_pb2.PushDestination())
    assert destination.filesystem.base_directory == target.serving_dir
    # The schema the pods import is staged under the pipeline root, with the configured comparators.
    schema_file = _parameter(vertex, "ImportSchemaGen", "schema_file")
    assert schema_file == local_runner.staged_schema_path(target.pipeline_root, vertex.config)
    assert os.path.isfile(schema_file)


def test_compile_options_report_every_problem_at_once():
    config = config_lib.RunConfig()  # synthetic data: the pods cannot read what `mtrec run` generates
    with pytest.raises(kubeflow.CompileError) as error:
        kubeflow.options(config, "", "runs/root", None, "models", platform="kfp", output="pipeline.json")
    mounted = ("must be an absolute path where every pod mounts the shared storage (e.g. /gcs/BUCKET/... on "
               "Vertex AI): mtrec reads the input and publishes models with local file APIs")
    assert str(error.value).splitlines()[1:] == [
        "  --image: required (the pipeline image, built from the Dockerfile)",
        "  --output: open-source Kubeflow Pipelines reads a PipelineSpec YAML; name it *.yaml, got 'pipeline.json'",
        "  --pipeline-root: 'runs/root' must be shared storage that every pod reads: a URI such as gs://bucket/dir "
        "or an absolute path on a mounted volume",
        "  --data-root: required, because the pods cannot read the 'synthetic' data that `mtrec run` prepares "
        "locally; write it with `mtrec generate` or `mtrec convert-movielens` to shared storage and pass that "
        "directory (or use data.source: csv)",
        f"  --serving-dir: 'models' {mounted}",
    ]
    with pytest.raises(kubeflow.CompileError) as error:
        kubeflow.options(config, IMAGE, "gs://bucket/root", "gs://bucket/data")
    assert str(error.value).splitlines()[1:] == [
        "  --serving-dir: required when the pipeline root is a URI: the absolute path where every pod mounts the "
        "serving storage (e.g. /gcs/BUCKET/serving on Vertex AI)",
        f"  --data-root: 'gs://bucket/data' {mounted}",
    ]


def test_compile_defaults_come_from_the_config_and_the_platform():
    config = config_lib.from_dict({"data": {"source": "csv", "path": "/mnt/mtrec/data"}})
    assert kubeflow.options(config, IMAGE, "/mnt/mtrec/root") == kubeflow.Options(
        IMAGE, "/mnt/mtrec/root", "/mnt/mtrec/data", "/mnt/mtrec/root/serving", "vertex", "pipeline.json")
    assert kubeflow.options(config, IMAGE, "gs://bucket/root", serving_dir="/gcs/bucket/serving",
                            platform="kfp").output == "pipeline.yaml"


def test_a_uri_pipeline_root_gets_the_staged_schema(tmp_path):
    """Compiling for a gs:// pipeline root writes the schema there; TensorFlow's ram:// filesystem stands in."""
    from tfx.dsl.io import fileio

    config = config_lib.RunConfig()
    target = kubeflow.options(config, IMAGE, "ram://kubeflow_test/root", "/mnt/data", "/mnt/serving")
    pipeline = kubeflow.build(config, target)
    schema_file = {node.id: node for node in pipeline.components}["ImportSchemaGen"].exec_properties["schema_file"]
    assert schema_file == local_runner.staged_schema_path("ram://kubeflow_test/root", config)
    # The same content as a local run stages.
    with fileio.open(schema_file) as staged, open(local_runner.stage_schema(str(tmp_path), config)) as local:
        assert staged.read() == local.read()


def test_cli_names_bad_options_without_a_traceback(tmp_path, capsys):
    assert cli.main(["compile", "kubeflow", "--image", IMAGE, "--pipeline-root", "relative/root"]) == 2
    err = capsys.readouterr().err
    assert "mtrec: error: compile kubeflow:" in err and "--pipeline-root: 'relative/root'" in err
    assert "Traceback" not in err


def test_a_windowed_input_ends_on_the_runs_data_day_parameter(tmp_path):
    from kfp.pipeline_spec import pipeline_spec_pb2

    config = config_lib.from_dict({**CONFIG, "data": {"source": "csv", "path": "/mnt/data", "window_days": 7},
                                   "training": {**CONFIG["training"], "warm_start": True}})
    target = kubeflow.options(config, IMAGE, str(tmp_path / "root"), platform="vertex",
                              output=str(tmp_path / "pipeline.json"))
    with open(kubeflow.compile_pipeline(config, target), encoding="utf-8") as handle:
        spec = json_format.ParseDict(json.load(handle)["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    assert "data_day" in spec.root.input_definitions.parameters
    example_gen = spec.root.dag.tasks["EventsExampleGen"].inputs.parameters
    assert example_gen["data_day"].component_input_parameter == "data_day"
    assert json.loads(example_gen["window_config"].runtime_value.constant.string_value)["window_days"] == 7
    # Warm start: the Trainer's base model is the latest blessed model, which the Resolver finds.
    assert "base_model" in spec.root.dag.tasks["Trainer"].inputs.artifacts
    with pytest.raises(kubeflow.CompileError, match="open-source Kubeflow Pipelines cannot run the Resolver"):
        kubeflow.options(config, IMAGE, str(tmp_path / "root"), platform="kfp", output="pipeline.yaml")


def test_a_latest_blessed_teacher_needs_the_resolver_that_only_vertex_runs(tmp_path):
    config = config_lib.from_dict({**CONFIG, "data": {"source": "csv", "path": "/mnt/data"},
                                   "distillation": {"teacher": "latest_blessed"}})
    with pytest.raises(kubeflow.CompileError, match="distillation.teacher: open-source Kubeflow Pipelines cannot"):
        kubeflow.options(config, IMAGE, str(tmp_path / "root"), platform="kfp", output="pipeline.yaml")
    target = kubeflow.options(config, IMAGE, str(tmp_path / "root"), platform="vertex",
                              output=str(tmp_path / "pipeline.json"))
    with open(kubeflow.compile_pipeline(config, target), encoding="utf-8") as handle:
        tasks = json.load(handle)["pipelineSpec"]["root"]["dag"]["tasks"]
    trainer = tasks["Trainer"]["inputs"]["artifacts"]
    assert trainer["examples"]["taskOutputArtifact"]["producerTask"] == "EventsExampleGen"
    assert "base_model" in trainer
