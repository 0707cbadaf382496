"""`mtrec benchmark retrieval-gate`: what the RetrievalEvaluator costs inside `mtrec run`.

Two runs of the whole pipeline (local_runner.local_pipeline under LocalDagRunner, as `mtrec run` builds it), each
in a fresh process (benchmarks/process.py), on synthetic data:
- `default`: the default run, the built-in data and the default configuration;
- `100k items`: a catalogue of 100,000 items (10,000 users, 30 events each), with the scale benchmark's small
  random text backbone (MiniLM would spend most of an hour encoding 100k texts, a cost of the catalogue) and one
  epoch.
For each: every component's seconds (ML Metadata's execution windows) and peak memory (the process tree, sampled),
and the RetrievalEvaluator's eval events. Its cost is judged against the Evaluator's, which reads the same eval
split with TFMA, and against the whole pipeline's wall time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from benchmarks import process, reports
from benchmarks.scale import TEXT_BACKBONE, generate, node_windows
from pipeline import config as config_lib
from pipeline import local_runner
from pipeline.data import synthetic

NAME = "retrieval-gate"
RETRIEVAL_EVALUATOR, EVALUATOR = "RetrievalEvaluator", "Evaluator"
# Targets, at every size: the gate costs at most the Evaluator's time and at most a tenth of the pipeline's.
MAX_EVALUATOR_RATIO = 1.0
MAX_PIPELINE_SHARE = 0.1


def cases() -> dict[str, config_lib.RunConfig]:
    """The configurations measured, by name (see the module docstring)."""
    large = config_lib.RunConfig()
    large.data.synthetic = synthetic.SyntheticConfig(num_users=10_000, num_items=100_000, events_per_user=30)
    large.text_encoder.backbone = dict(TEXT_BACKBONE)
    large.training.epochs = 1
    return {"default": config_lib.RunConfig(), "100k items": large}


def full_run(config: config_lib.RunConfig, data_dir: str) -> dict[str, Any]:
    """Runs the whole pipeline over `data_dir`; returns the components' time windows and the run's summary."""
    from absl import logging as absl_logging
    from tfx import v1 as tfx

    from pipeline import run_summary

    absl_logging.set_verbosity(absl_logging.ERROR)
    for name in ("tensorflow", "apache_beam"):  # as `mtrec run` quiets them, Beam's worker reports included
        logging.getLogger(name).setLevel(logging.ERROR)
    tempfile.tempdir = os.environ["TMPDIR"] = os.path.join(config.output_dir, "tmp")  # see scale.data_stage
    os.makedirs(tempfile.tempdir, exist_ok=True)
    paths = local_runner.RunPaths(config.output_dir)
    tfx.orchestration.LocalDagRunner().run(local_runner.local_pipeline(config, paths, data_dir))
    return {"windows": node_windows(run_summary.open_store(paths.metadata), config.pipeline_name),
            "summary": run_summary.summarise(paths.metadata)}


def measure(name: str, config: config_lib.RunConfig, work_dir: str, log: Callable[[str], None]) -> dict[str, Any]:
    root = os.path.join(work_dir, name.replace(" ", "-"))
    data_dir = os.path.join(root, "data")
    counts = process.run_isolated(generate, data_dir, config.data.synthetic).result
    ran = process.run_isolated(full_run, dataclasses.replace(config, output_dir=os.path.join(root, "run")), data_dir)
    windows = ran.result["windows"]
    components = {component: {"seconds": round(end - start, 1), "peak_memory_mb": round(ran.peak_between(start, end))}
                  for component, (start, end) in sorted(windows.items(), key=lambda entry: entry[1][0])}
    pipeline_seconds = max(end for _, end in windows.values()) - min(start for start, _ in windows.values())
    retrieval = ran.result["summary"]["retrieval"]
    gate_seconds = components[RETRIEVAL_EVALUATOR]["seconds"]
    figures = {
        **counts, "components": components, "pipeline_seconds": round(pipeline_seconds, 1),
        "retrieval_eval_events": retrieval["slices"]["overall"]["examples"],
        "retrieval_evaluator_seconds": gate_seconds,
        "retrieval_evaluator_own_seconds": retrieval["seconds"],
        "evaluator_seconds": components[EVALUATOR]["seconds"],
        "evaluator_ratio": round(gate_seconds / components[EVALUATOR]["seconds"], 3),
        "pipeline_share": round(gate_seconds / pipeline_seconds, 3),
        "retrieval_evaluator_peak_memory_mb": components[RETRIEVAL_EVALUATOR]["peak_memory_mb"],
        "overall": retrieval["slices"]["overall"], "blessed": retrieval["blessed"],
    }
    log(f"{name}: {counts['items']:,} items, {figures['retrieval_eval_events']:,} eval events: RetrievalEvaluator "
        f"{gate_seconds:.0f} s, Evaluator {figures['evaluator_seconds']:.0f} s, pipeline {pipeline_seconds:.0f} s")
    shutil.rmtree(root, ignore_errors=True)
    return figures


def targets(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    worst_ratio = max(figures["evaluator_ratio"] for figures in results.values())
    worst_share = max(figures["pipeline_share"] for figures in results.values())
    return {
        f"retrieval evaluator seconds <= {MAX_EVALUATOR_RATIO:g}x the Evaluator's, at every size": {
            "value": worst_ratio, "met": worst_ratio <= MAX_EVALUATOR_RATIO},
        f"retrieval evaluator seconds <= {MAX_PIPELINE_SHARE:.0%} of the pipeline's, at every size": {
            "value": worst_share, "met": worst_share <= MAX_PIPELINE_SHARE},
    }


def run(work_dir: str | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mtrec-retrieval-gate-", dir=work_dir) as scratch:
        results = {name: measure(name, config, scratch, log) for name, config in cases().items()}
    return {"machine": reports.machine(), "cases": results, "targets": targets(results)}


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Retrieval gate: what the RetrievalEvaluator costs in `mtrec run`", "",
             f"Machine: {report['machine']}. Each run of the whole pipeline in its own process; seconds from ML "
             "Metadata's execution windows, peak memory of the process tree while the component ran.", "",
             "| run | items | events | eval events retrieved | RetrievalEvaluator s | Evaluator s | ratio | pipeline s "
             "| share | RetrievalEvaluator peak MB | Recall@10 model / most popular |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, figures in report["cases"].items():
        overall = figures["overall"]
        lines.append(
            f"| {name} | {figures['items']:,} | {figures['events']:,} | {figures['retrieval_eval_events']:,} | "
            f"{figures['retrieval_evaluator_seconds']:.1f} | {figures['evaluator_seconds']:.1f} | "
            f"{figures['evaluator_ratio']:.2f} | {figures['pipeline_seconds']:.0f} | {figures['pipeline_share']:.1%} | "
            f"{figures['retrieval_evaluator_peak_memory_mb']:,} | {overall['model']['recall@10']:.3f} / "
            f"{overall['popularity']['recall@10']:.3f} |")
    lines += reports.target_lines(report["targets"])
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], output_dir: str) -> list[str]:
    return reports.write(report, output_dir, NAME, markdown(report))
