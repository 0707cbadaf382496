"""Runs the pipeline locally (LocalDagRunner + Beam DirectRunner) and summarises what came out of it.

Layout of `output_dir`: `data/` (the prepared CSV input), `pipeline_root/` (artifacts), `metadata.sqlite`
(ML Metadata), `serving/` (pushed, versioned models) and `last_run.json` (the summary of the latest run,
written last, with `"status": "succeeded"` only when every component finished).
"""

from __future__ import annotations

import contextlib
import dataclasses
import filecmp
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from components.example_gen import input_contract, window
from models import features
from pipeline import beam_options
from pipeline import config as config_lib
from pipeline.data import kuairand, movielens, synthetic

SUMMARY_FILE = "last_run.json"


@dataclasses.dataclass
class RunPaths:
    output_dir: str

    @property
    def data(self) -> str:
        return os.path.join(self.output_dir, "data")

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.output_dir, "pipeline_root")

    @property
    def metadata(self) -> str:
        return os.path.join(self.output_dir, "metadata.sqlite")

    @property
    def serving(self) -> str:
        return os.path.join(self.output_dir, "serving")

    @property
    def summary(self) -> str:
        return os.path.join(self.output_dir, SUMMARY_FILE)


class RunFailedError(RuntimeError):
    """A component failed; the message names it and says why, and `summary` is the failed run's summary."""

    def __init__(self, summary: dict[str, Any]):
        super().__init__(summary["error"])
        self.summary = summary


def prepare_data(config: config_lib.RunConfig, paths: RunPaths) -> str:
    """Returns the directory with events.csv and items.csv, writing it first where the source needs that.

    Generated and converted data is written to a temporary directory and moved into place whole, so an
    interrupted preparation never leaves a half-written input behind.
    """
    source = config.data.source
    if source == "csv":
        return os.path.abspath(config.data.path)
    staging = paths.data + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    if source == "synthetic":
        synthetic.generate(staging, config.data.synthetic)
    elif source == "kuairand":
        kuairand.convert(config.data.path, staging)
    else:
        movielens.convert(config.data.path, staging)
    # The pipeline's cache fingerprints input files, so identical regenerated data keeps its artifacts valid.
    if os.path.isdir(paths.data) and sorted(os.listdir(staging)) == sorted(os.listdir(paths.data)) and all(
            _same_file(os.path.join(staging, name), os.path.join(paths.data, name)) for name in os.listdir(staging)):
        shutil.rmtree(staging)
    else:
        shutil.rmtree(paths.data, ignore_errors=True)
        os.replace(staging, paths.data)
    return os.path.abspath(paths.data)


def _same_file(a: str, b: str) -> bool:
    return os.path.isfile(b) and filecmp.cmp(a, b, shallow=False)


_COMPONENT_LINE = re.compile(r"Component (?P<name>\S+) is (?P<state>running|finished)\.")


class _ProgressHandler(logging.Handler):
    """Turns the runner's per-component log lines into short progress lines; errors pass through."""

    def __init__(self, total: int):
        super().__init__()
        self.total = total
        self.finished = 0
        self.started: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        match = _COMPONENT_LINE.match(message)
        if match and match["state"] == "running":
            self.started[match["name"]] = time.time()
            line = f"mtrec: [{self.finished + 1}/{self.total}] {match['name']} running"
        elif match:
            self.finished += 1
            seconds = time.time() - self.started.get(match["name"], time.time())
            line = f"mtrec: [{self.finished}/{self.total}] {match['name']} done ({seconds:.0f} s)"
        elif record.levelno >= logging.ERROR:
            line = f"mtrec: {message}"
        else:
            return
        print(line, file=sys.stderr, flush=True)


def _configure_logging(verbose: bool, progress: bool, num_components: int) -> None:
    """Per-component progress lines with `progress`; all of TFX's, Beam's and TensorFlow's logs with `verbose`;
    neither: quiet."""
    import warnings

    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    logger = logging.getLogger("absl")
    for handler in [h for h in logger.handlers if isinstance(h, _ProgressHandler | logging.NullHandler)]:
        logger.removeHandler(handler)
    logger.propagate = verbose
    if verbose:
        return
    # Quiet: a NullHandler, or Python's last-resort handler would still print TFX's warnings.
    logger.addHandler(_ProgressHandler(num_components) if progress else logging.NullHandler())
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("apache_beam").setLevel(logging.ERROR)  # also what Beam's worker processes report
    warnings.filterwarnings("ignore")


def code_version() -> str:
    """A fingerprint of the source of the packages whose code runs inside the pipeline's components."""
    import components
    import models
    import schema

    digest = hashlib.sha256()
    for package in (components, models, schema):
        root = os.path.dirname(os.path.abspath(package.__file__))
        for folder, _, files in sorted(os.walk(root)):
            for name in sorted(files):
                if name.endswith((".py", ".pbtxt")):
                    path = os.path.join(folder, name)
                    digest.update(os.path.relpath(path, root).encode())
                    with open(path, "rb") as handle:
                        digest.update(handle.read())
    return digest.hexdigest()[:16]


def labelled_schema(tasks: list[config_lib.Task], declared: list[features.Feature] = ()) -> str:
    """The curated schema with the label columns of `tasks` (their types, domains and presence) and the columns of
    the `declared` features."""
    import schema

    with open(schema.SCHEMA_FILE, encoding="utf-8") as handle:
        labelled = schema.with_labels(handle.read(), features.label_columns(tasks), config_lib.label_ranges(tasks))
    return schema.with_features(labelled, declared)


def _schema_text(config: config_lib.RunConfig) -> str:
    import schema

    return schema.with_comparators(labelled_schema(config.model.tasks, config.features), config.validation.drift,
                                   config.validation.skew)


def staged_schema_path(root: str, config: config_lib.RunConfig) -> str:
    """Where `stage_schema` puts the curated schema with the configured label columns and drift and skew
    comparators: a path named by that content."""
    digest = hashlib.sha256(_schema_text(config).encode("utf-8")).hexdigest()[:16]
    return os.path.join(root, "schema", digest, "schema.pbtxt")


def stage_schema(root: str, config: config_lib.RunConfig) -> str:
    """Writes the curated schema, with the configured label columns and drift and skew comparators, to
    `staged_schema_path`, and returns that path.

    ImportSchemaGen's cache key is the schema file's path, not its content: a changed schema at the same path
    would be served from the cache. A content-named path makes a new schema a new input. Written through TFX's
    fileio, so `root` may be a URI (a Kubeflow pipeline root on gs://), and renamed into place whole.
    """
    from tfx.dsl.io import fileio

    staged = staged_schema_path(root, config)
    if not fileio.exists(staged):
        fileio.makedirs(os.path.dirname(staged))
        with fileio.open(staged + ".partial", "w") as handle:
            handle.write(_schema_text(config))
        fileio.rename(staged + ".partial", staged, overwrite=True)
    return staged


def build_pipeline(config: config_lib.RunConfig, data_root: str, pipeline_root: str, serving_dir: str,
                   schema_path: str, metadata_connection_config: Any | None, baseline: bool = True,
                   data_day: Any = None) -> Any:
    """The pipeline of `config` over the given locations: local ones for `run`, shared ones for Kubeflow.

    `metadata_connection_config` is None where the orchestrator brings its own ML Metadata. `baseline`: whether
    the Evaluator compares against the latest blessed model (see create_pipeline). `data_day`: the last day of the
    window of daily partitions, where not `data.day` (a Kubeflow runtime parameter).
    """
    from pipeline import evaluation
    from pipeline.pipeline import create_pipeline

    trained = config_lib.trained(config)  # the student, when distilling
    text = trained.text_encoder
    tasks = [dataclasses.asdict(task) for task in config.model.tasks]
    declared = [dataclasses.asdict(feature) for feature in config.features]
    transform_config = {
        "text_preset": text.preset,
        "text_max_length": text.max_length,
        "history_length": config.example_gen.history_length,
        "max_categories": trained.model.max_categories,
        "tasks": tasks,
        "features": declared,
    }
    distillation = config.distillation
    trainer_config = {
        "model": dataclasses.asdict(trained.model),
        "text_encoder": dataclasses.asdict(text),
        "training": dataclasses.asdict(config.training),
        "items_path": os.path.join(data_root, input_contract.ITEMS_FILE),
        "users_path": os.path.join(data_root, input_contract.USERS_FILE),
        "require_text": config_lib.requires_text(trained),
        "features": declared,
        "distillation": {**dataclasses.asdict(distillation), "teacher": teacher_location(distillation.teacher)}
        if distillation.enabled else None,
    }
    return create_pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=pipeline_root,
        data_root=data_root,
        schema_path=schema_path,
        serving_model_dir=serving_dir,
        example_gen_args={**dataclasses.asdict(config.example_gen),
                          "label_columns": config_lib.label_columns(config),
                          "require_text": config_lib.requires_text(config), "features": declared,
                          "window_config": window_config(config.data).to_json() if config.data.partitioned else "",
                          "data_day": data_day if data_day is not None else config.data.day or ""},
        transform_config=transform_config,
        trainer_config=trainer_config,
        eval_config=evaluation.eval_config(config.evaluation, config.model.tasks),
        retrieval_settings=evaluation.retrieval_settings(config.evaluation.retrieval, config.model.tasks),
        max_bad_fraction=config.validation.max_bad_fraction,
        code_version=code_version(),
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_options.pipeline_args(config.beam),
        baseline=baseline,
        base_model=config.training.warm_start or distillation.teacher == features.LATEST_BLESSED_TEACHER,
        raw_examples=distillation.enabled,
    )


def teacher_location(teacher: str) -> str:
    """`distillation.teacher` as the Trainer reads it: "latest_blessed", a URI, or an absolute path (a relative one
    is the working directory's)."""
    if teacher == features.LATEST_BLESSED_TEACHER or config_lib.is_uri(teacher):
        return teacher
    return os.path.abspath(teacher)


def window_config(data: config_lib.Data) -> window.WindowConfig:
    """The window of daily partitions `data` asks for."""
    return window.WindowConfig(data.window_days, tuple(data.span) if data.span is not None else None, data.day,
                               data.missing_days)


def check_input(config: config_lib.RunConfig, data_root: str) -> tuple[input_contract.InputFiles, window.Window | None]:
    """The input's file-level faults (input_contract.check_input_dir), found before anything runs; for daily
    partitions the window is resolved first (a missing day refused as configured) and its day files must share one
    header."""
    resolved, files = None, None
    if config.data.partitioned:
        resolved = window.resolve(data_root, window_config(config.data))
        files = resolved.files(data_root)
        window.check_headers(files)
    checked = input_contract.check_input_dir(data_root, config_lib.label_columns(config),
                                             config_lib.requires_text(config), config.features, files)
    return checked, resolved


def check_teacher(config: config_lib.RunConfig, paths: RunPaths) -> None:
    """A `latest_blessed` teacher needs a blessed model in this output directory's ML Metadata: refused before
    anything runs (the Trainer checks again, as it must on Kubeflow)."""
    if config.distillation.teacher != features.LATEST_BLESSED_TEACHER:
        return
    from pipeline import run_summary

    if not run_summary.has_blessed_model(paths.metadata):
        raise config_lib.ConfigError(
            f"distillation.teacher: latest_blessed, but {paths.output_dir} has no blessed model yet. Run once without "
            f"`distillation` to train and bless the teacher, or name a teacher's SavedModel directory")


def local_pipeline(config: config_lib.RunConfig, paths: RunPaths, data_root: str) -> Any:
    """The pipeline of `run`: artifacts, staged schema and serving versions under `paths`, ML Metadata in SQLite."""
    from tfx import v1 as tfx

    return build_pipeline(config, data_root, paths.pipeline_root, paths.serving,
                          stage_schema(paths.output_dir, config),
                          tfx.orchestration.metadata.sqlite_metadata_connection_config(paths.metadata))


def run(config: config_lib.RunConfig, verbose: bool = False, progress: bool = True) -> dict[str, Any]:
    """Prepares and validates the input, runs the pipeline, writes the report, returns (and writes) the summary.

    Raises InputError before anything runs when the input breaks the contract, RunFailedError when a
    component fails. A failed run's summary says `"status": "failed"` and why; its report shows how far it got.
    """
    paths = RunPaths(os.path.abspath(config.output_dir))
    os.makedirs(paths.output_dir, exist_ok=True)
    if os.path.exists(paths.summary):
        os.remove(paths.summary)  # never leave an older success in place while this run is unfinished
    check_teacher(config, paths)
    data_root = prepare_data(config, paths)
    files, resolved = check_input(config, data_root)
    if progress:
        ignored = "".join(f"; {name} columns not read: {', '.join(columns)}"
                          for name, columns in files.ignored_columns.items())
        users = f", {files.user_rows} user rows" if files.user_rows else ""
        days = f" (window {resolved.describe()})" if resolved else ""
        print(f"mtrec: input {data_root}{days}: {files.event_rows} event rows, {files.item_rows} item rows{users}"
              f"{ignored}", file=sys.stderr)

    from tfx import v1 as tfx

    from pipeline import report, run_summary

    started = time.time()
    pipeline = local_pipeline(config, paths, data_root)
    _configure_logging(verbose, progress, len(pipeline.components))
    inputs = {"dir": data_root, "events": files.event_rows, "items": files.item_rows, "users": files.user_rows,
              "ignored_columns": files.ignored_columns}
    if resolved:
        inputs["window"] = {"days": list(resolved.days), "skipped": list(resolved.skipped), "span": resolved.span}
    try:
        with _temporary_directory():
            tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as error:  # noqa: BLE001 - any component failure ends the run with its reason
        summary = {"status": "failed", "error": run_summary.failure_reason(error),
                   "failed_checks": run_summary.failed_checks_of_error(error),
                   "input": {**inputs, **run_summary.quarantine(paths.metadata)},
                   "output_dir": paths.output_dir, "seconds": round(time.time() - started, 1)}
        try:
            summary["report"] = report.write(paths.output_dir, summary)
        except Exception as report_error:  # noqa: BLE001 - the run's own failure is what must be reported
            summary["report_error"] = run_summary.failure_reason(report_error)
        _write_json(paths.summary, summary)
        raise RunFailedError(summary) from error
    summary = run_summary.summarise(paths.metadata)
    summary.update({"status": "succeeded", "input": {**inputs, **run_summary.quarantine(paths.metadata)},
                    "output_dir": paths.output_dir,
                    "thresholds": {name: value for name, value in dataclasses.asdict(config.evaluation).items()
                                   if name not in ("slices", "per_task", "retrieval")},
                    "task_thresholds": config.evaluation.per_task,
                    "seconds": round(time.time() - started, 1)})
    summary["report"] = report.write(paths.output_dir, summary)
    _write_json(paths.summary, summary)  # last: its presence with "succeeded" marks a finished run
    return summary


@contextlib.contextmanager
def _temporary_directory() -> Iterator[None]:
    """Gives the run (this process and its Beam worker processes) a temporary directory of its own, removed
    afterwards. Given Beam arguments, TFX copies and packages its installation (about 50 MB) into a new temporary
    directory for every Beam component, and never removes it."""
    path = tempfile.mkdtemp(prefix="mtrec-run-")
    previous, previous_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = os.environ["TMPDIR"] = path
    try:
        yield
    finally:
        tempfile.tempdir = previous
        if previous_env is None:
            os.environ.pop("TMPDIR")
        else:
            os.environ["TMPDIR"] = previous_env
        shutil.rmtree(path, ignore_errors=True)


def write_atomically(path: str, content: str | bytes) -> None:
    """Writes beside `path`, then renames: a reader sees the old file or the whole new one, never a part."""
    partial = path + ".partial"
    with open(partial, "wb") as handle:
        handle.write(content.encode("utf-8") if isinstance(content, str) else content)
    os.replace(partial, path)


def _write_json(path: str, value: dict[str, Any]) -> None:
    write_atomically(path, json.dumps(value, indent=2, sort_keys=True))
