"""`mtrec benchmark scale`: how the pipeline's cost grows with the size of the behaviour log.

For each size, in one run: a synthetic log of that many events (pipeline/data/synthetic.py) over a catalogue
that grows with it (10k items at 100k events, 200k at 5M, a power law in between), then two stages:
- the data stage: the pipeline of `mtrec run` (local_runner.local_pipeline under LocalDagRunner, with a real
  run's Beam settings) up to Transform. ExampleGen and Transform are timed from ML Metadata. StatisticsGen and
  the data checks run too, because Transform waits for them; they are reported apart;
- one training epoch over Transform's output, set up by the Trainer's own code (trainer.prepare_training, with
  TFX's data accessor and the custom_config the pipeline gives the Trainer).
Each stage runs in a fresh process (benchmarks/process.py), so its peak memory is its own; a component's peak
is the largest memory sampled while it ran. Linear cost means that events per second stay constant as the log
grows and that peak memory does not grow with it; the targets compare every size with the smallest.

Users and items grow with the log, as they do in real logs, and memory that grows with them (vocabularies,
embedding tables, the catalogue's text) is the model's size, not a cost per event. So the run ends with a
control: the largest size's events over the smallest size's users and items. Its memory against the smallest
size's is the growth that the events alone cause.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

from benchmarks import process, reports
from pipeline import config as config_lib
from pipeline import local_runner
from pipeline.data import synthetic

NAME = "scale"
SIZES = (100_000, 1_000_000, 5_000_000)
EVENTS_PER_USER = 30
# (events, items) at both ends; the catalogue grows as a power law of the log between (and beyond) them.
CATALOGUE_ANCHORS = ((100_000, 10_000), (5_000_000, 200_000))
SEED = 7
# The text tower when no --config is given: frozen, as by default, but a small random BERT over MiniLM's
# vocabulary. The frozen tower encodes every catalogue item once before training; MiniLM itself does ~70 texts/s
# on 2 CPUs, about 45 minutes for 200k items, a cost of the catalogue and not of the log.
TEXT_BACKBONE = {"num_layers": 2, "num_heads": 2, "hidden_dim": 64, "intermediate_dim": 128}
# Targets. Linear cost: events/s at every size within 20% of the smallest size's (the margin is machine noise).
# Bounded memory: peak memory at every size at most 25% above the smallest size's.
MIN_EVENTS_PER_SECOND_RATIO = 0.8
MAX_PEAK_MEMORY_RATIO = 1.25
STAGES = {"example_gen_transform": "ExampleGen + Transform", "training": "training epoch"}


def catalogue_size(events: int) -> int:
    (events_0, items_0), (events_1, items_1) = CATALOGUE_ANCHORS
    exponent = math.log(items_1 / items_0) / math.log(events_1 / events_0)
    return max(10, round(items_0 * (events / events_0) ** exponent))


def data_config(events: int, vocabulary_of: int | None = None) -> synthetic.SyntheticConfig:
    """About `events` rows over the users and items of a log of `vocabulary_of` events (default: `events`), whose
    users draw EVENTS_PER_USER events on average."""
    vocabulary_of = vocabulary_of or events
    users = max(2, round(vocabulary_of / EVENTS_PER_USER))
    return synthetic.SyntheticConfig(num_users=users, num_items=catalogue_size(vocabulary_of),
                                     events_per_user=max(1, round(events / users)), seed=SEED)


def benchmark_config(path: str | None = None) -> config_lib.RunConfig:
    """The run configuration measured: the file's (any `data` section is ignored), or the defaults with the small
    text backbone."""
    if path:
        return config_lib.load(path)
    config = config_lib.RunConfig()
    config.text_encoder.backbone = dict(TEXT_BACKBONE)
    return config


# === The jobs, each in its own process ===

def generate(data_dir: str, data: synthetic.SyntheticConfig) -> dict[str, int]:
    """Writes the log and catalogue; returns their row counts."""
    paths = synthetic.generate(data_dir, data)
    rows = []
    for path in paths:
        with open(path, "rb") as handle:
            rows.append(sum(1 for _ in handle) - 1)  # the header
    return {"events": rows[0], "items": rows[1], "users": data.num_users}


def node_windows(store: Any, pipeline_name: str) -> dict[str, tuple[float, float]]:
    """(start, end) in unix seconds of every component execution in `store`, by component id."""
    windows = {}
    for context in store.get_contexts_by_type("node"):
        for execution in store.get_executions_by_context(context.id):
            windows[context.name.removeprefix(f"{pipeline_name}.")] = (
                execution.create_time_since_epoch / 1000, execution.last_update_time_since_epoch / 1000)
    return windows


def data_stage(config: config_lib.RunConfig, data_dir: str) -> dict[str, Any]:
    """Runs the pipeline up to Transform; returns the components' time windows, the examples per split, and what
    the Trainer would be given (its custom_config) and the Beam arguments used."""
    import tensorflow_data_validation as tfdv
    from absl import logging as absl_logging
    from tfx import v1 as tfx
    from tfx.orchestration.pipeline import RunOptions

    from components.example_gen.component import EventsExampleGen
    from pipeline import run_summary

    absl_logging.set_verbosity(absl_logging.ERROR)
    # TFX packages its installation into a new temporary directory for every Beam component and leaves it there:
    # here it is inside the run's directory, removed with it.
    tempfile.tempdir = os.environ["TMPDIR"] = os.path.join(config.output_dir, "tmp")
    os.makedirs(tempfile.tempdir, exist_ok=True)
    paths = local_runner.RunPaths(config.output_dir)
    pipeline = local_runner.local_pipeline(config, paths, data_dir)
    ids = {type(component): component.id for component in pipeline.components}
    tfx.orchestration.LocalDagRunner().run(
        pipeline, run_options=RunOptions(to_nodes=[ids[tfx.components.Transform]]))
    store = run_summary.open_store(paths.metadata)
    statistics = run_summary.produced_by(run_summary.latest_run_artifacts(store), "ExampleStatistics",
                                         ids[tfx.components.StatisticsGen])
    examples = {split: int(tfdv.load_stats_binary(os.path.join(statistics.uri, f"Split-{split}", "FeatureStats.pb"))
                           .datasets[0].num_examples) for split in run_summary.split_names(statistics)}
    trainer = next(component for component in pipeline.components if isinstance(component, tfx.components.Trainer))
    return {"windows": node_windows(store, config.pipeline_name), "examples": examples,
            "example_gen": ids[EventsExampleGen], "transform": ids[tfx.components.Transform],
            "trainer_config": json.loads(trainer.exec_properties["custom_config"]),
            "beam_pipeline_args": list(pipeline.beam_pipeline_args)}


def _tfx_artifact(store: Any, artifact: Any) -> Any:
    from tfx.types import artifact_utils

    return artifact_utils.deserialize_artifact(store.get_artifact_types_by_id([artifact.type_id])[0], artifact)


def train_epoch(metadata_path: str, transform_id: str, trainer_config: dict[str, Any]) -> dict[str, Any]:
    """One epoch over Transform's train split, set up by the Trainer's own prepare_training; returns the times."""
    import keras
    import tensorflow_text  # noqa: F401  (the Transform graph's WordPiece ops)
    from tfx import v1 as tfx
    from tfx.components.trainer.fn_args_utils import DataAccessor
    from tfx.components.util import tfxio_utils
    from tfx.types import artifact_utils
    from tfx.utils import io_utils

    from models import trainer
    from pipeline import run_summary

    store = run_summary.open_store(metadata_path)
    artifacts = run_summary.latest_run_artifacts(store)
    examples = _tfx_artifact(store, run_summary.produced_by(artifacts, "Examples", transform_id))
    files = {split: [io_utils.all_files_pattern(artifact_utils.get_split_uri([examples], split))]
             for split in ("train", "eval")}
    # As the Trainer executor builds them (tfx.components.trainer.fn_args_utils.get_common_fn_args).
    fn_args = tfx.components.FnArgs(
        train_files=files["train"], eval_files=files["eval"], custom_config=trainer_config,
        transform_output=run_summary.produced_by(artifacts, "TransformGraph", transform_id).uri,
        data_accessor=DataAccessor(tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact([examples], []),
                                   record_batch_factory=None, data_view_decode_fn=None))
    started = time.time()
    setup = trainer.prepare_training(fn_args)
    first_step_end: list[float] = []  # the first step also traces the training graph, a cost per run

    def on_train_batch_end(batch: int, logs: dict[str, Any] | None) -> None:
        if batch == 0:
            first_step_end.append(time.time())

    epoch_start = time.time()
    history = setup.model.fit(setup.train, epochs=1, verbose=0,
                              callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=on_train_batch_end)])
    return {"setup_start": started, "epoch_start": epoch_start, "first_step_end": first_step_end[0],
            "epoch_end": time.time(), "loss": float(history.history["loss"][-1])}


# === One size, then the run ===

def _rounded(value: float) -> float:
    return round(value, 1)


def measure_size(data: synthetic.SyntheticConfig, config: config_lib.RunConfig, work_dir: str,
                 log: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(every figure of one size, the Trainer's custom_config and the Beam arguments that the pipeline used).
    Ratios against the other sizes are added by `run`."""
    root = os.path.join(work_dir, f"users-{data.num_users}-items-{data.num_items}-per-user-{data.events_per_user}")
    data_dir = os.path.join(root, "data")
    generated = process.run_isolated(generate, data_dir, data)
    counts = generated.result
    log(f"{counts['events']:,} events, {counts['items']:,} items, {counts['users']:,} users: generated in "
        f"{generated.seconds:.0f} s")

    run_config = dataclasses.replace(config, output_dir=os.path.join(root, "run"))
    staged = process.run_isolated(data_stage, run_config, data_dir)
    windows = staged.result["windows"]
    components = {name: {"seconds": _rounded(end - start), "peak_memory_mb": _rounded(staged.peak_between(start, end))}
                  for name, (start, end) in sorted(windows.items(), key=lambda entry: entry[1][0])}
    measured = [components[staged.result["example_gen"]], components[staged.result["transform"]]]
    data_seconds = sum(component["seconds"] for component in measured)
    log("  data stage: " + ", ".join(f"{name} {c['seconds']:.0f} s" for name, c in components.items()))

    trained = process.run_isolated(train_epoch, local_runner.RunPaths(run_config.output_dir).metadata,
                                   staged.result["transform"], staged.result["trainer_config"])
    times = trained.result
    train_examples = staged.result["examples"]["train"]
    epoch_seconds = times["epoch_end"] - times["epoch_start"]
    # Throughput after the first step: graph tracing is a fixed cost, not a cost per event.
    steady_examples = train_examples - staged.result["trainer_config"]["training"]["batch_size"]
    if steady_examples <= 0:
        raise ValueError(f"{counts['events']} events make a single training batch; there is no throughput to "
                         "measure")
    steady_seconds = times["epoch_end"] - times["first_step_end"]
    log(f"  training: setup {times['epoch_start'] - times['setup_start']:.0f} s, epoch {epoch_seconds:.0f} s "
        f"(first step {times['first_step_end'] - times['epoch_start']:.0f} s)")
    figures = {
        **counts,
        "examples": staged.result["examples"],
        "generate": {"seconds": _rounded(generated.seconds), "peak_memory_mb": _rounded(generated.peak_memory_mb)},
        "example_gen_transform": {
            "seconds": _rounded(data_seconds), "events_per_second": _rounded(counts["events"] / data_seconds),
            "peak_memory_mb": max(component["peak_memory_mb"] for component in measured)},
        "components": components,
        "data_stage_process": {"seconds": _rounded(staged.seconds), "peak_memory_mb": _rounded(staged.peak_memory_mb)},
        "training": {
            "train_examples": train_examples,
            "setup_seconds": _rounded(times["epoch_start"] - times["setup_start"]),
            "seconds": _rounded(epoch_seconds),
            "first_step_seconds": _rounded(times["first_step_end"] - times["epoch_start"]),
            "events_per_second": _rounded(steady_examples / steady_seconds),
            "peak_memory_mb": _rounded(trained.peak_between(times["epoch_start"], times["epoch_end"])),
            "process_peak_memory_mb": _rounded(trained.peak_memory_mb),
            "loss": round(times["loss"], 4)},
    }
    return figures, {key: staged.result[key] for key in ("trainer_config", "beam_pipeline_args")}


def add_ratios(sizes: list[dict[str, Any]], control: dict[str, Any] | None = None) -> None:
    """Each stage's events/s and peak memory as a multiple of the smallest size's, also the control's, and its
    marginal cost: the seconds that the events added since the next smaller size took, per million (constant when
    cost is linear)."""
    smallest = sizes[0]
    for size in [*sizes, control] if control else sizes:
        for stage in STAGES:
            figures, base = size[stage], smallest[stage]
            figures["events_per_second_ratio"] = round(figures["events_per_second"] / base["events_per_second"], 3)
            figures["peak_memory_ratio"] = round(figures["peak_memory_mb"] / base["peak_memory_mb"], 3)
    for previous, size in zip(sizes, sizes[1:], strict=False):
        for stage in STAGES:
            size[stage]["marginal_seconds_per_million_events"] = _rounded(
                (size[stage]["seconds"] - previous[stage]["seconds"]) / (size["events"] - previous["events"]) * 1e6)


def _memory_growth(smallest: dict[str, Any], larger: dict[str, Any], stage: str) -> float:
    """MB of peak memory per million events added."""
    return round((larger[stage]["peak_memory_mb"] - smallest[stage]["peak_memory_mb"])
                 / (larger["events"] - smallest["events"]) * 1e6, 1)


def targets(sizes: list[dict[str, Any]], control: dict[str, Any] | None = None) -> dict[str, Any]:
    """The issue's targets per stage, with the worst ratio over the larger sizes and the memory growth rate; the
    memory target also for the control, if there is one."""
    result = {}
    smallest, largest = sizes[0], sizes[-1]
    for stage, title in STAGES.items():
        speed = min(size[stage]["events_per_second_ratio"] for size in sizes[1:])
        memory = max(size[stage]["peak_memory_ratio"] for size in sizes[1:])
        result[f"{title}: events/s >= {MIN_EVENTS_PER_SECOND_RATIO}x the smallest size's"] = {
            "worst_ratio": speed, "met": speed >= MIN_EVENTS_PER_SECOND_RATIO}
        result[f"{title}: peak memory <= {MAX_PEAK_MEMORY_RATIO}x the smallest size's, users and items growing "
               "with the log"] = {
            "worst_ratio": memory, "growth_mb_per_million_events": _memory_growth(smallest, largest, stage),
            "met": memory <= MAX_PEAK_MEMORY_RATIO}
        if control:
            memory = control[stage]["peak_memory_ratio"]
            result[f"{title}: peak memory <= {MAX_PEAK_MEMORY_RATIO}x the smallest size's at {control['events']:,} "
                   "events over the smallest size's users and items"] = {
                "worst_ratio": memory, "growth_mb_per_million_events": _memory_growth(smallest, control, stage),
                "met": memory <= MAX_PEAK_MEMORY_RATIO}
    return result


def run(sizes: tuple[int, ...] = SIZES, config: config_lib.RunConfig | None = None, work_dir: str | None = None,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measures every size in ascending order (at least two); returns the report. `work_dir` keeps the data and
    pipeline outputs; without it they go to a temporary directory that is removed."""
    if len(set(sizes)) < 2:
        raise ValueError(f"`sizes` should hold at least two different sizes. Received: `sizes` = {sizes}")
    config = config or benchmark_config()
    sizes = sorted(set(sizes))
    if work_dir:
        os.makedirs(work_dir, exist_ok=True)  # a directory the user names need not exist yet
    with tempfile.TemporaryDirectory(prefix="mtrec-scale-", dir=work_dir) as root:
        measured = [measure_size(data_config(events), config, root, log) for events in sizes]
        log("control: the largest size's events over the smallest size's users and items")
        control, _ = measure_size(data_config(sizes[-1], vocabulary_of=sizes[0]), config, root, log)
    results = [figures for figures, _ in measured]
    add_ratios(results, control)
    settings = measured[0][1]
    trainer_config = settings["trainer_config"]
    return {
        "benchmark": NAME,
        "machine": reports.machine(),
        "settings": {"events_per_user": EVENTS_PER_USER, "seed": SEED,
                     "beam_pipeline_args": settings["beam_pipeline_args"],
                     **{key: trainer_config[key] for key in ("model", "text_encoder", "training")}},
        "sizes": results,
        "control": control,
        "targets": targets(results, control),
    }


# === Output ===

def _rows(report: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(figures, label for the events cell) of every size, then of the control."""
    return [(size, "") for size in report["sizes"]] + [(report["control"], " (control)")]


def markdown(report: dict[str, Any]) -> str:
    settings = report["settings"]
    text = settings["text_encoder"]
    backbone = (f"a random BERT ({', '.join(f'{key} {value}' for key, value in text['backbone'].items())})"
                if text["backbone"] else f"the `{text['preset']}` weights")
    lines = [
        "# Scale benchmark", "",
        f"Machine: {report['machine']}. Beam arguments: `{' '.join(settings['beam_pipeline_args'])}`. "
        f"Model: {settings['model']['type']}, {settings['model']['architecture']}, text tower "
        f"{text['mode']} with {backbone}; batch size {settings['training']['batch_size']}. "
        "Each stage ran in its own process; ratios are against the smallest size. The control row holds the users "
        "and items of the smallest size under the events of the largest, so its growth is the events' alone.", "",
        "| events | items | users | ExampleGen + Transform s | events/s | ratio | peak MB | ratio | "
        "epoch s | train events/s | ratio | peak MB | ratio |",
        "|---" * 13 + "|"]
    for size, label in _rows(report):
        cells = [f"{size['events']:,}{label}", f"{size['items']:,}", f"{size['users']:,}"]
        for stage in STAGES:
            figures = size[stage]
            cells += [f"{figures['seconds']:,.0f}", f"{figures['events_per_second']:,.0f}",
                      f"{figures['events_per_second_ratio']:.2f}", f"{figures['peak_memory_mb']:,.0f}",
                      f"{figures['peak_memory_ratio']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    names = list(report["sizes"][0]["components"])
    lines += ["", "Every component of the data stage, seconds / peak MB (Transform waits for the data checks), and "
              "the training setup (statistics pass, model build, catalogue text encoding):", "",
              "| events | " + " | ".join(names) + " | training setup |", "|---" * (len(names) + 2) + "|"]
    for size, label in _rows(report):
        cells = [f"{size['components'][name]['seconds']:,.0f} / {size['components'][name]['peak_memory_mb']:,.0f}"
                 for name in names]
        lines.append(f"| {size['events']:,}{label} | " + " | ".join(cells)
                     + f" | {size['training']['setup_seconds']:,.0f} |")
    lines += ["", "Marginal cost, the seconds that the events added since the next smaller size took, per million "
              "events (constant when cost is linear in events):", ""]
    for stage, title in STAGES.items():
        steps = [f"{previous['events']:,} to {size['events']:,}: "
                 f"{size[stage]['marginal_seconds_per_million_events']:,.0f} s"
                 for previous, size in zip(report["sizes"], report["sizes"][1:], strict=False)]
        lines.append(f"- {title}: " + "; ".join(steps))
    lines += reports.target_lines(report["targets"])
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: str) -> None:
    reports.save_figure(path, 2, (11, 4), lambda axes: _draw(report, axes))


def _draw(report: dict[str, Any], axes: Any) -> None:
    events = [size["events"] for size in report["sizes"]]
    for stage, title in STAGES.items():
        axes[0].plot(events, [size[stage]["events_per_second_ratio"] for size in report["sizes"]], marker="o",
                     label=title)
        line, = axes[1].plot(events, [size[stage]["peak_memory_mb"] for size in report["sizes"]], marker="o",
                             label=title)
        axes[1].plot(report["control"]["events"], report["control"][stage]["peak_memory_mb"], marker="s",
                     linestyle="none", color=line.get_color(), label=f"{title}, control (users and items fixed)")
    axes[0].axhline(MIN_EVENTS_PER_SECOND_RATIO, color="grey", linestyle="--", label="target (at least)")
    axes[0].set_title("events per second / the smallest size's (flat = linear cost)")
    axes[1].set_title("peak memory, MB (flat = bounded)")
    for axis in axes:
        axis.set_xscale("log")
        axis.set_xlabel("events in the log")
        axis.set_ylim(0, axis.get_ylim()[1] * 1.5)  # room above the data for the legend
        axis.legend(loc="upper left", fontsize="small")


def write(report: dict[str, Any], output_dir: str) -> list[str]:
    """Writes scale.json, scale.md and scale.png to `output_dir`; returns the paths."""
    return reports.write(report, output_dir, NAME, markdown(report), lambda path: plot(report, path))
