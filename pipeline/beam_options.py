"""The Beam pipeline arguments of the `beam` config section: which runner runs the Beam components, and how.

ExampleGen, StatisticsGen, Transform and the Evaluator are Beam jobs. Locally they run on the DirectRunner, by
default in multi-processing mode over every core. Any other runner is selected by name, and its own flags (a
job endpoint, a Flink master, a GCP project) pass through `pipeline_args` verbatim.
"""

from __future__ import annotations

import typing

if typing.TYPE_CHECKING:
    from pipeline.config import Beam

RUNNERS = ("DirectRunner", "PortableRunner", "FlinkRunner", "SparkRunner", "DataflowRunner")
RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")
# Options a runner cannot go without (Beam's option names, as `--name=value` or `--name value`).
REQUIRED_OPTIONS = {"PortableRunner": ("job_endpoint",), "DataflowRunner": ("project", "region", "temp_location")}
# Options the `beam` section sets itself, so pipeline_args must not set them a second time.
_OWN_OPTIONS = ("runner", "direct_running_mode", "direct_num_workers")
# Options that tell Beam how a remote runner's workers get their Python code: mtrec and its pinned stack, from
# an image with mtrec installed (as the Dockerfile builds it) or from mtrec's setup.py.
_DEPENDENCY_OPTIONS = ("sdk_container_image", "worker_harness_container_image", "setup_file", "extra_packages",
                       "requirements_file")


def pipeline_args(beam: Beam) -> list[str]:
    """The beam_pipeline_args of the pipeline: the runner, the DirectRunner's mode and workers, then
    pipeline_args as given."""
    if beam.runner == "DirectRunner":
        return [f"--runner={beam.runner}", f"--direct_running_mode={beam.direct_running_mode}",
                f"--direct_num_workers={beam.direct_num_workers}", *beam.pipeline_args]
    return [f"--runner={beam.runner}", *beam.pipeline_args]


def problems(beam: Beam) -> list[str]:
    """Everything wrong with the `beam` section's pipeline_args, for the configuration's error message."""
    found = []
    given = _given_options(beam.pipeline_args)
    for option in [option for option in _OWN_OPTIONS if option in given]:
        found.append(f"beam.pipeline_args: set --{option} through beam.{option}, not pipeline_args")
    if beam.pipeline_args:
        found += [f"beam.pipeline_args: {problem}" for problem in _parse_problems(beam.pipeline_args)]
    if beam.runner not in RUNNERS:  # reported by the configuration's own check of choices
        return found
    missing = [f"--{option}" for option in REQUIRED_OPTIONS.get(beam.runner, ()) if option not in given]
    if missing:
        found.append(f"beam.pipeline_args: the {beam.runner} needs {missing}")
    # Without one, TFX ships its own sdist to the workers, and they fail at the first bundle on mtrec's imports.
    loopback = given.get("environment_type") == "LOOPBACK"  # the workers run in this process
    if beam.runner != "DirectRunner" and not loopback and not set(_DEPENDENCY_OPTIONS) & set(given):
        found.append(f"beam.pipeline_args: the {beam.runner}'s workers need mtrec: give "
                     f"--sdk_container_image=IMAGE (an image with mtrec installed) or --setup_file=PATH/setup.py")
    return found


def _given_options(args: list[str]) -> dict[str, str | None]:
    """Option name (no dashes) -> value of the flags in `args` (`--name=value` or `--name value`; None: no value)."""
    options: dict[str, str | None] = {}
    for index, arg in enumerate(args):
        if arg.startswith("-"):
            name, _, value = arg.lstrip("-").partition("=")
            following = args[index + 1] if index + 1 < len(args) else "-"
            options[name] = value if "=" in arg else None if following.startswith("-") else following
    return options


def _parse_problems(args: list[str]) -> list[str]:
    """What Beam's own parser of every PipelineOptions class rejects, or would discard with a warning."""
    import argparse

    from apache_beam.options import pipeline_options

    # Beam's parser class: option classes declare ValueProvider arguments, which a plain ArgumentParser lacks.
    parser = pipeline_options._BeamArgumentParser(allow_abbrev=False, exit_on_error=False)
    for cls in {str(cls): cls for cls in pipeline_options.PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)
    try:
        _, unknown = parser.parse_known_args(args)
    except argparse.ArgumentError as error:
        return [str(error)]
    return [f"Beam does not know {unknown}"] if unknown else []
