"""Compiles the pipeline into a Kubeflow Pipelines v2 spec with TFX's KubeflowV2DagRunner.

It is the pipeline `mtrec run` runs (`local_runner.build_pipeline`), built over the locations its pods see: the
pipeline root, the input CSVs and the serving directory are shared storage, and ML Metadata is the
orchestrator's own. Every component runs by import path from the pipeline image (see the Dockerfile), so no
module file or wheel is staged. Two platforms:

- `vertex`: Vertex AI Pipelines runs the whole pipeline, the Resolvers of the baselines included.
- `kfp`: open-source Kubeflow Pipelines; its backend has no Resolver executor, so the pipeline is built without
  baselines (the Evaluator applies only its absolute thresholds), and the output is a PipelineSpec YAML, which is
  what `kfp.Client` reads.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from models import features
from pipeline import config as config_lib
from pipeline import local_runner

PLATFORMS = ("vertex", "kfp")
DEFAULT_OUTPUT = {"vertex": "pipeline.json", "kfp": "pipeline.yaml"}
YAML_SUFFIXES = (".yaml", ".yml")
# The container command of every component; the Dockerfile's ENTRYPOINT is the same.
ENTRYPOINT_MODULE = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
# The pipeline parameter that sets the last day of a partitioned input's window (see `build`).
DATA_DAY_PARAMETER = "data_day"


class CompileError(config_lib.ConfigError):
    """The compile options are invalid; the message lists every problem."""


@dataclasses.dataclass(frozen=True)
class Options:
    """What `mtrec compile kubeflow` compiles for: the image, the shared locations, the platform, the output."""

    image: str
    pipeline_root: str
    data_root: str
    serving_dir: str
    platform: str
    output: str


def options(config: config_lib.RunConfig, image: str, pipeline_root: str, data_root: str | None = None,
            serving_dir: str | None = None, platform: str = "vertex", output: str | None = None) -> Options:
    """The compile options with their defaults filled in; every problem with them in one CompileError.

    The pipeline root is a URI (gs://...; TFX reads and writes artifacts through tf.io.gfile) or an absolute path
    that every pod mounts. The data root and the serving dir are absolute mounted paths (e.g. /gcs/BUCKET/... on
    Vertex AI), because mtrec reads the CSV input and publishes model versions with local file APIs. The data
    root defaults to `data.path` of a csv source (data that `mtrec run` generates exists only on the machine
    that generated it), the serving dir to PIPELINE_ROOT/serving for a mounted pipeline root, the output to
    pipeline.json (vertex) or pipeline.yaml (kfp). A relative path would resolve in each pod's working directory.
    """
    problems = []
    if not image:
        problems.append("--image: required (the pipeline image, built from the Dockerfile)")
    if platform not in PLATFORMS:
        problems.append(f"--platform: must be one of {list(PLATFORMS)}, got {platform!r}")
    output = output or DEFAULT_OUTPUT.get(platform, DEFAULT_OUTPUT["vertex"])
    if platform == "kfp" and not output.endswith(YAML_SUFFIXES):
        problems.append(f"--output: open-source Kubeflow Pipelines reads a PipelineSpec YAML; name it *.yaml, "
                        f"got {output!r}")
    if platform == "kfp" and config.training.warm_start:
        problems.append("training.warm_start: open-source Kubeflow Pipelines cannot run the Resolver that finds the "
                        "latest blessed model; warm start runs on --platform vertex")
    if platform == "kfp" and config.distillation.teacher == features.LATEST_BLESSED_TEACHER:
        problems.append("distillation.teacher: open-source Kubeflow Pipelines cannot run the Resolver that finds the "
                        "latest blessed model; name the teacher's SavedModel directory, or use --platform vertex")
    if not (config_lib.is_uri(pipeline_root) or os.path.isabs(pipeline_root)):
        problems.append(f"--pipeline-root: {pipeline_root!r} must be shared storage that every pod reads: a URI "
                        f"such as gs://bucket/dir or an absolute path on a mounted volume")
    if data_root is None and config.data.source == "csv":
        data_root = config.data.path
    elif data_root is None:
        problems.append(f"--data-root: required, because the pods cannot read the {config.data.source!r} data "
                        f"that `mtrec run` prepares locally; write it with `mtrec generate` or `mtrec "
                        f"convert-movielens` to shared storage and pass that directory (or use data.source: csv)")
    if serving_dir is None and config_lib.is_uri(pipeline_root):
        problems.append("--serving-dir: required when the pipeline root is a URI: the absolute path where every "
                        "pod mounts the serving storage (e.g. /gcs/BUCKET/serving on Vertex AI)")
    elif serving_dir is None:
        serving_dir = os.path.join(pipeline_root, "serving")
    for option, value in (("--data-root", data_root), ("--serving-dir", serving_dir)):
        if value is not None and not os.path.isabs(value):
            problems.append(f"{option}: {value!r} must be an absolute path where every pod mounts the shared "
                            f"storage (e.g. /gcs/BUCKET/... on Vertex AI): mtrec reads the input and publishes "
                            f"models with local file APIs")
    if problems:
        raise CompileError("compile kubeflow:\n  " + "\n  ".join(problems))
    return Options(image, pipeline_root, data_root, serving_dir, platform, output)


def build(config: config_lib.RunConfig, target: Options) -> Any:
    """The TFX pipeline that `compile_pipeline` compiles: `mtrec run`'s, over the shared locations.

    The schema is staged under the pipeline root, so building needs write access there, as running does.
    """
    from tfx import v1 as tfx

    schema_path = local_runner.stage_schema(target.pipeline_root, config)
    # A window of daily partitions ends on the run's `data_day` parameter: a recurring run sets it to its scheduled
    # date, so each day's run reads (and caches) its own window; the default is the config's day, or the latest.
    data_day = tfx.dsl.experimental.RuntimeParameter(name=DATA_DAY_PARAMETER, ptype=str,
                                                     default=config.data.day or "") if config.data.partitioned else None
    return local_runner.build_pipeline(config, target.data_root, target.pipeline_root, target.serving_dir,
                                       schema_path, metadata_connection_config=None,
                                       baseline=target.platform == "vertex", data_day=data_day)


def compile_pipeline(config: config_lib.RunConfig, target: Options) -> str:
    """Writes the spec and returns its path: a `.json` output is a PipelineJob (its runtime config holds the
    pipeline root, for Vertex AI), a `.yaml` one a PipelineSpec (the pipeline root is given at submission)."""
    from tfx import v1 as tfx

    output = os.path.abspath(target.output)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            display_name=config.pipeline_name, default_image=target.image, use_pipeline_spec_2_1=True),
        output_dir=os.path.dirname(output), output_filename=os.path.basename(output))
    runner.run(build(config, target))
    return output
