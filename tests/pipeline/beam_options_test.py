"""The `beam` config section: the Beam args each runner gets, what Beam makes of them, and every mistake named."""

from __future__ import annotations

import pytest
import yaml
from apache_beam.options import pipeline_options
from apache_beam.runners import runner as beam_runner

from pipeline import beam_options
from pipeline import config as config_lib

RUNNER_CONFIGS = {  # YAML of docs/scaling.md's examples -> (runner class, options Beam must read from the args)
    """
beam: {}
""": ("SwitchingDirectRunner", {"direct_running_mode": "multi_processing", "direct_num_workers": 0}),
    """
beam: {runner: PortableRunner, pipeline_args: [--job_endpoint=localhost:8099, --environment_type=LOOPBACK]}
""": ("PortableRunner", {"job_endpoint": "localhost:8099", "environment_type": "LOOPBACK"}),
    """
beam:
  runner: FlinkRunner
  pipeline_args: [--flink_master=flink:8081, --environment_type=DOCKER, --sdk_container_image=mtrec:1]
""": ("FlinkRunner", {"flink_master": "flink:8081", "sdk_container_image": "mtrec:1"}),
    """
beam: {runner: SparkRunner, pipeline_args: [--spark_master_url=spark://spark:7077, --setup_file=/src/setup.py]}
""": ("SparkRunner", {"spark_master_url": "spark://spark:7077", "setup_file": "/src/setup.py"}),
    """
beam:
  runner: DataflowRunner
  pipeline_args: [--project, my-project, --region=europe-west4, --temp_location=gs://bucket/tmp,
                  --sdk_container_image=europe-west4-docker.pkg.dev/my-project/repo/mtrec:1]
""": ("DataflowRunner", {"project": "my-project", "region": "europe-west4", "temp_location": "gs://bucket/tmp"}),
}


@pytest.mark.parametrize("text", list(RUNNER_CONFIGS))
def test_each_runner_gets_its_flags_and_beam_reads_them(text):
    runner, expected = RUNNER_CONFIGS[text]
    beam = config_lib.from_dict(yaml.safe_load(text)).beam
    args = beam_options.pipeline_args(beam)
    assert args[0] == f"--runner={beam.runner}"
    assert args[-len(beam.pipeline_args):] == beam.pipeline_args or not beam.pipeline_args  # verbatim, in order
    options = pipeline_options.PipelineOptions(args)
    assert type(beam_runner.create_runner(options.view_as(pipeline_options.StandardOptions).runner)).__name__ \
        == runner
    read = options.get_all_options()
    assert {name: read[name] for name in expected} == expected


def test_the_local_default_is_the_direct_runner_in_multi_processing_over_every_core():
    assert beam_options.pipeline_args(config_lib.RunConfig().beam) == [
        "--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=0"]


def _problems(values: dict) -> list[str]:
    with pytest.raises(config_lib.ConfigError) as raised:
        config_lib.from_dict(values)
    return sorted(str(raised.value).splitlines()[1:])


def test_every_beam_mistake_is_named_at_once():
    assert _problems({"beam": {"runner": "DataflowRunner", "direct_num_workers": -1, "pipeline_args": [
        "--runner=FlinkRunner", "--project=p", "--direct_runner_bundle_repeat=abc"]}}) == sorted([
        "  beam.direct_num_workers: must not be negative, got -1",
        "  beam.pipeline_args: set --runner through beam.runner, not pipeline_args",
        "  beam.pipeline_args: argument --direct_runner_bundle_repeat: invalid int value: 'abc'",
        "  beam.pipeline_args: the DataflowRunner needs ['--region', '--temp_location']",
        "  beam.pipeline_args: the DataflowRunner's workers need mtrec: give --sdk_container_image=IMAGE (an image "
        "with mtrec installed) or --setup_file=PATH/setup.py",
    ])
    assert _problems({"beam": {"runner": "Flink", "direct_running_mode": "threads",
                               "pipeline_args": ["--job_endpont=x", "stray"]}}) == [
        "  beam.direct_running_mode: must be one of ['in_memory', 'multi_threading', 'multi_processing'], "
        "got 'threads'",
        "  beam.pipeline_args: Beam does not know ['--job_endpont=x', 'stray']",
        "  beam.runner: must be one of ['DirectRunner', 'PortableRunner', 'FlinkRunner', 'SparkRunner', "
        "'DataflowRunner'], got 'Flink'",
    ]


def test_the_training_settings_take_only_their_choices():
    assert _problems({"training": {"distribution": "horovod", "mixed_precision": "float16",
                                   "jit_compile": "yes"}}) == [
        "  training.distribution: must be one of ['default', 'mirrored', 'multi_worker_mirrored', 'tpu'], "
        "got 'horovod'",
        "  training.jit_compile: expected true or false, got 'yes'",
        "  training.mixed_precision: must be one of ['none', 'mixed_float16', 'mixed_bfloat16'], got 'float16'",
    ]
    with pytest.raises(config_lib.ConfigError, match="training.jit_compile: the tfrs baseline trains without it"):
        config_lib.from_dict({"model": {"type": "tfrs", "tasks": [
            {"name": "retrieval", "type": "retrieval", "label": None},
            {"name": "rating", "type": "regression", "label": "rating"}]}, "training": {"jit_compile": True}})
