"""`mtrec report`: one self-contained HTML page about a run, built from ML Metadata and the pipeline root.

Sections: the data (rows per split, per-feature statistics, the validator's verdict), training (loss curves
per task, learning rate), evaluation (per-task metrics overall and per slice against the baseline, and the
blessing decision with its reasons), retrieval (full-catalogue Recall@K, NDCG@K and MRR per slice against the
most popular items and the latest blessed model, and the retrieval gate's verdict) and the pushed model (version,
signatures, serving check). Plots are inline PNGs; the page loads nothing from the network and runs no script.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

from components.data_gate.component import describe_anomalies  # noqa: E402
from components.retrieval_evaluator import metrics as retrieval_metrics  # noqa: E402
from models.trainer import TRAINING_LOG_FILE  # noqa: E402
from pipeline import run_summary  # noqa: E402
from pipeline.local_runner import RunPaths, write_atomically  # noqa: E402

REPORT_FILE = "report.html"
SECTIONS = ("data", "training", "evaluation", "retrieval", "model")
_STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; } th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #17692c; font-weight: bold; } .bad { color: #a3161a; font-weight: bold; }
img { max-width: 100%; } .scroll { overflow-x: auto; } code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _figure(fig: plt.Figure, alt: str) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f'<td class="num">{value:.4g}</td>'
        if isinstance(value, int):
            return f'<td class="num">{value:,}</td>'
        return f"<td>{_e(value)}</td>"

    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


# === Data ===

def _load_statistics(artifact: Any) -> dict[str, Any]:
    import tensorflow_data_validation as tfdv

    result = {}
    for split in run_summary.split_names(artifact):
        path = os.path.join(artifact.uri, f"Split-{split}", "FeatureStats.pb")
        result[split] = tfdv.load_stats_binary(path).datasets[0]
    return result


def _feature_rows(dataset: Any) -> list[list[Any]]:
    rows = []
    for feature in dataset.features:
        name = feature.path.step[0] if feature.path.step else feature.name
        if feature.HasField("num_stats"):
            stats, common = feature.num_stats, feature.num_stats.common_stats
            summary = f"mean {stats.mean:.3g}, std {stats.std_dev:.3g}, min {stats.min:.3g}, max {stats.max:.3g}"
        else:
            stats, common = feature.string_stats, feature.string_stats.common_stats
            top = ", ".join(f"{v.value} ({int(v.frequency)})" for v in stats.top_values[:3])
            summary = f"{stats.unique:,} unique; top: {top}"
        rows.append([name, int(common.num_non_missing), int(common.num_missing),
                     float(common.avg_num_values), summary])
    return rows


_PLOTTED_NUMERIC = 3


def _numeric_histograms(by_split: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    """Float feature -> split -> its histogram's non-empty buckets, for the first few float features (the
    examples' only floats are numeric labels, e.g. rating)."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    found: dict[str, dict[str, list[Any]]] = {}
    for split, dataset in by_split.items():
        for feature in dataset.features:
            if feature.type == statistics_pb2.FeatureNameStatistics.FLOAT and feature.path.step:
                buckets = [b for b in feature.num_stats.histograms[0].buckets if b.sample_count] \
                    if feature.num_stats.histograms else []
                if buckets:
                    found.setdefault(feature.path.step[0], {})[split] = buckets
    return dict(sorted(found.items())[:_PLOTTED_NUMERIC])


def _data_section(artifacts: dict[str, list[Any]], summary: dict[str, Any]) -> str:
    parts = ['<section id="data"><h2>Data</h2>']
    if "input" in summary:
        given = summary["input"]
        parts.append(f"<p>Input <code>{_e(given['dir'])}</code>: {given['events']:,} event rows, "
                     f"{given['items']:,} item rows.</p>")
        read = run_summary.window_of(summary)
        if read:
            parts.append(f"<p>Window of daily partitions: {_e(read.describe())}.</p>")
        rows = [[name, counts["rows"], counts["quarantined"],
                 ", ".join(f"{column}: {n}" for column, n in sorted(counts["by_column"].items())) or "-"]
                for name, counts in sorted(given.get("quarantine", {}).items())]
        if rows:
            parts.append(_table(["file", "rows", "quarantined", "by column"], rows))
            parts.append(f"<p>Quarantined rows, with the reason for each: <code>{_e(given['quarantine_file'])}"
                         "</code>.</p>")
    statistics = run_summary.produced_by(artifacts, "ExampleStatistics", "StatisticsGen")
    if statistics:
        by_split = _load_statistics(statistics)
        parts.append(_table(["split", "examples"], [[s, int(d.num_examples)] for s, d in by_split.items()]))
        numeric = _numeric_histograms(by_split)
        fig, axes = plt.subplots(1, 1 + len(numeric), figsize=(5 * (1 + len(numeric)), 3), squeeze=False)
        axes[0][0].bar(list(by_split), [d.num_examples for d in by_split.values()], color="#4c72b0")
        axes[0][0].set_title("examples per split")
        for axis, (name, by_split_buckets) in zip(axes[0][1:], numeric.items(), strict=True):
            for offset, (split, buckets) in enumerate(by_split_buckets.items()):
                total = sum(b.sample_count for b in buckets)
                widths = [(b.high_value - b.low_value) / (len(by_split_buckets) + 1) or 0.2 for b in buckets]
                axis.bar([b.low_value + width * offset for b, width in zip(buckets, widths, strict=True)],
                         [b.sample_count / total for b in buckets], width=widths, align="edge", label=split)
            axis.set_title(f"{name} distribution (share of the split)")
            axis.legend()
        parts.append(_figure(fig, "examples per split and numeric label distributions"))
        for split, dataset in by_split.items():
            parts.append(f"<h3>Features of the {_e(split)} split</h3>")
            parts.append(_table(["feature", "present", "missing", "values per example", "statistics"],
                                _feature_rows(dataset)))
    anomalies = run_summary.produced_by(artifacts, "ExampleAnomalies", "DataValidator")
    if anomalies:
        problems = describe_anomalies(anomalies.uri, run_summary.split_names(anomalies))
        verdict = ('<p class="ok">DataValidator: no anomalies against the curated schema, no drift from the last '
                   'validated run and no skew between train and eval beyond the thresholds.</p>' if not problems
                   else '<p class="bad">DataValidator found anomalies:</p><ul>'
                   + "".join(f"<li>{_e(p)}</li>" for p in problems) + "</ul>")
        parts.append(verdict)
    parts.append("</section>")
    return "".join(parts)


# === Training ===

def _training_section(store: Any, artifacts: dict[str, list[Any]]) -> str:
    parts = ['<section id="training"><h2>Training</h2>']
    models = artifacts.get("Model", [])[-1:]
    model_run = run_summary.sibling_output(store, models[0], "ModelRun") if models else None
    log_path = os.path.join(model_run.uri, TRAINING_LOG_FILE) if model_run else ""
    if not os.path.isfile(log_path):
        parts.append("<p>No training log in this run.</p></section>")
        return "".join(parts)
    with open(log_path, encoding="utf-8") as handle:
        epochs = json.load(handle)
    numbers = [e["epoch"] for e in epochs]
    tasks = [key.removesuffix("_loss") for key in epochs[0] if key.endswith("_loss") and key != "val_loss"
             and not key.startswith("val_")]
    fig, axes = plt.subplots(1, len(tasks) + 1, figsize=(4 * (len(tasks) + 1), 3))
    for axis, task in zip(axes, tasks, strict=False):
        axis.plot(numbers, [e[f"{task}_loss"] for e in epochs], marker="o", label="train")
        if f"val_{task}_loss" in epochs[0]:
            axis.plot(numbers, [e[f"val_{task}_loss"] for e in epochs], marker="o", label="eval")
        axis.set_title(f"{task} loss")
        axis.set_xlabel("epoch")
        axis.legend()
    axes[-1].plot(numbers, [e["learning_rate"] for e in epochs], marker="o", color="#dd8452")
    axes[-1].set_title("learning rate")
    axes[-1].set_xlabel("epoch")
    parts.append(_figure(fig, "loss curves per task and learning rate"))
    columns = sorted({key for e in epochs for key in e} - {"epoch"})
    parts.append(_table(["epoch", *columns], [[e["epoch"], *(float(e[c]) for c in columns)] for e in epochs]))
    parts.append(f"<p>TensorBoard: <code>tensorboard --logdir {_e(model_run.uri)}</code></p>")
    carried = run_summary.warm_start_report(model_run.uri)
    if carried:
        parts.append(f"<h3>Warm start</h3><p>From the latest blessed model <code>{_e(carried['base_dir'])}</code>: "
                     f"{len(carried['dense'])} weights carried as they are; embedding rows by id:</p>")
        parts.append(_table(["table", "known ids (trained rows kept)", "new ids (fresh rows)", "ids dropped"],
                            [[name, rows["known"], rows["new"], rows["dropped"]]
                             for name, rows in carried["tables"].items()]))
        not_carried = [[key, reason] for key, reason in carried["not_carried"].items()]
        parts.append(_table(["not carried (trains from scratch)", "why"], not_carried) if not_carried
                     else "<p>Every weight of the model carried.</p>")
        parts.extend(f"<p>Note: {_e(note)}</p>" for note in carried["notes"])
    parts.append("</section>")
    return "".join(parts)


# === Evaluation ===

# Per task output, in this order where the Evaluator computed them; the first of each task's is plotted.
_SHOWN_METRICS = ("auc", "gauc", "calibration", "root_mean_squared_error")


def _shown_metrics(by_slice: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(output, metric) pairs to show: every task output's AUC, GAUC and calibration, or RMSE."""
    import tensorflow_model_analysis as tfma

    overall = by_slice.get(run_summary.OVERALL, {}).get(tfma.CANDIDATE_KEY, {})
    return [(output, metric) for output in sorted(overall) for metric in _SHOWN_METRICS
            if metric in overall[output]]


def _trivial_baselines_table(summary: dict[str, Any]) -> str:
    """The model's overall figures beside each task's trivial baseline, which the Evaluator also gates on: the
    train-mean predictor (regression), the random ranker's AUC and a calibrated model's calibration (binary)."""
    baselines = summary.get("trivial_baselines", {})
    if not baselines:
        return ""
    names = {"root_mean_squared_error": "the train-mean predictor", "auc": "a random ranker",
             "calibration": "a calibrated model"}
    rows = [[task, metric, summary.get("metrics", {}).get(task, {}).get(metric, ""), round(value, 4), names[metric]]
            for task, baseline in sorted(baselines.items()) for metric, value in sorted(baseline.items())
            if metric in names]
    return ("<p>Each task against its trivial baseline (overall slice):</p>"
            + _table(["task", "metric", "model", "trivial baseline", "which is"], rows))


def _distillation_block(distilled: dict[str, Any]) -> str:
    """The student beside its teacher: what it learnt from it, and the two SavedModels' sizes."""
    where = ("The teacher is also the latest blessed model, so the baseline columns below are the teacher's."
             if distilled["teacher_is_baseline"] else
             "The baseline columns below are the latest blessed model's, not the teacher's.")
    return (f"<h3>Distilled student</h3><p>Learnt from the teacher <code>{_e(distilled['teacher'])}</code>: soft "
            f"losses for {_e(', '.join(distilled['soft_targets']) or 'no task')} (hard weight "
            f"{distilled['hard_weight']:g}, soft weight {distilled['soft_weight']:g}, temperature "
            f"{distilled['temperature']:g}). {_e(where)}</p>"
            + _table(["model", "SavedModel MB"], [["student (this run)", distilled["student_mb"]],
                                                  ["teacher", distilled["teacher_mb"]]]))


def _evaluation_section(artifacts: dict[str, list[Any]], summary: dict[str, Any]) -> str:
    import tensorflow_model_analysis as tfma

    parts = ['<section id="evaluation"><h2>Evaluation</h2>']
    evaluations = artifacts.get("ModelEvaluation", [])[-1:]
    if not evaluations:
        parts.append("<p>The Evaluator did not run.</p></section>")
        return "".join(parts)
    by_slice = run_summary.evaluation_metrics(evaluations[0].uri)
    has_baseline = any(tfma.BASELINE_KEY in models for models in by_slice.values())
    distilled = summary.get("distillation")
    baseline_name = "teacher" if distilled and distilled["teacher_is_baseline"] else "baseline"
    if distilled:
        parts.append(_distillation_block(distilled))
    shown = _shown_metrics(by_slice)
    header = ["slice", "examples"]
    for output, metric in shown:
        header.append(f"{output} {metric}")
        if has_baseline:
            header.append(baseline_name)
    rows = []
    ordered = sorted(by_slice, key=lambda name: (name != run_summary.OVERALL, name))
    for name in ordered:
        candidate = by_slice[name].get(tfma.CANDIDATE_KEY, {})
        baseline = by_slice[name].get(tfma.BASELINE_KEY, {})
        counts = [metrics.get("example_count", 0) for metrics in candidate.values()]
        row: list[Any] = [name, int(max(counts, default=0))]
        for output, metric in shown:
            row.append(candidate.get(output, {}).get(metric, ""))
            if has_baseline:
                row.append(baseline.get(output, {}).get(metric, ""))
        rows.append(row)
    parts.append(_table(header, rows))
    plotted = [(output, metric) for output, metric in shown if metric != "calibration"]
    if plotted:
        fig, axes = plt.subplots(1, len(plotted), figsize=(5.5 * len(plotted), 3.2), squeeze=False)
        for axis, (output, metric) in zip(axes[0], plotted, strict=True):
            values = [by_slice[n].get(tfma.CANDIDATE_KEY, {}).get(output, {}).get(metric, 0.0) for n in ordered]
            axis.barh(ordered, values, color="#4c72b0", label="candidate")
            if has_baseline:
                base = [by_slice[n].get(tfma.BASELINE_KEY, {}).get(output, {}).get(metric, 0.0) for n in ordered]
                axis.scatter(base, ordered, color="#c44e52", zorder=3, label=baseline_name)
                axis.legend()
            axis.set_title(f"{output} {metric} per slice")
            axis.invert_yaxis()
        parts.append(_figure(fig, "metrics per slice"))
    parts.append(_trivial_baselines_table(summary))
    thresholds = summary.get("thresholds")
    if thresholds:
        parts.append("<p>Thresholds (all on the overall slice): " + ", ".join(
            f"{_e(name)} {value:g}" for name, value in thresholds.items())
            + ". The change thresholds compare with the baseline and apply only when there is one."
            + "".join(f" {_e(task)}'s own: " + ", ".join(f"{_e(name)} {value:g}" for name, value in own.items()) + "."
                      for task, own in summary.get("task_thresholds", {}).items()) + "</p>")
    blessed = summary.get("blessed")
    if blessed:
        parts.append('<p class="ok">Blessed: every absolute threshold and change threshold held.</p>')
    else:
        parts.append('<p class="bad">Not blessed. Failed thresholds:</p><ul>'
                     + "".join(f"<li>{_e(f)}</li>" for f in (*summary.get("failed_baseline_checks", {}).values(),
                                                              *summary.get("failed_thresholds", []))) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


# === Retrieval ===

_SOURCES = ((retrieval_metrics.MODEL, "model"), (retrieval_metrics.POPULARITY, "most popular"),
            (retrieval_metrics.BASELINE, "latest blessed"))


def _retrieval_section(summary: dict[str, Any]) -> str:
    parts = ['<section id="retrieval"><h2>Retrieval</h2>']
    retrieval = summary.get("retrieval")
    if not retrieval:
        parts.append("<p>The retrieval evaluation did not run.</p></section>")
        return "".join(parts)
    slices = retrieval["slices"]
    ordered = sorted(slices, key=lambda name: (name != retrieval_metrics.OVERALL, name))
    overall = slices[retrieval_metrics.OVERALL]
    sources = [(source, label) for source, label in _SOURCES if overall.get(source)]
    names = list(overall.get(retrieval_metrics.MODEL, {}))
    header = ["slice", "events", *(f"{name} {label}" for name in names for _, label in sources)]
    rows = [[name, slices[name]["examples"],
             *(slices[name].get(source, {}).get(metric, "") for metric in names for source, _ in sources)]
            for name in ordered]
    parts.append(f"<p>Every positive eval event: its item's rank among the whole catalogue in what the "
                 f"<code>retrieve</code> signature returns for its user "
                 f"({'history excluded' if retrieval.get('exclude_history', True) else 'history included'}); "
                 f"{retrieval['seconds']:g} s.</p>")
    parts.append('<div class="scroll">' + _table(header, rows) + "</div>")
    gated = f"recall@{retrieval['gate']['cutoff']}"
    fig, axis = plt.subplots(figsize=(7, 0.35 * len(ordered) + 1.2))
    height = 0.8 / len(sources)
    for i, (source, label) in enumerate(sources):
        axis.barh([j + i * height for j in range(len(ordered))],
                  [slices[name].get(source, {}).get(gated, 0.0) for name in ordered], height=height, label=label)
    axis.set_yticks([j + height * (len(sources) - 1) / 2 for j in range(len(ordered))], ordered)
    axis.invert_yaxis()
    axis.set_title(f"{gated} per slice")
    axis.legend()
    parts.append(_figure(fig, f"{gated} per slice"))
    gate = retrieval["gate"]
    parts.append(f"<p>Gate (overall slice): Recall@{gate['cutoff']} at least {gate['min_lift']:g}x the most popular "
                 f"items', and at most {gate['max_recall_decrease']:g} below the latest blessed model's.</p>")
    if retrieval["blessed"]:
        parts.append('<p class="ok">Blessed by the retrieval gate.</p>')
    else:
        parts.append('<p class="bad">Not blessed by the retrieval gate:</p><ul>'
                     + "".join(f"<li>{_e(f)}</li>" for f in retrieval["failures"]) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


# === Pushed model ===

def _signature_rows(model_dir: str) -> list[list[Any]]:
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(model_dir, "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())

    def describe(tensors: Any) -> str:
        import tensorflow as tf

        return "; ".join(f"{name} {tf.dtypes.as_dtype(info.dtype).name}"
                         f"{[d.size for d in info.tensor_shape.dim]}" for name, info in sorted(tensors.items()))

    signatures = saved_model.meta_graphs[0].signature_def
    return [[name, describe(signatures[name].inputs), describe(signatures[name].outputs)]
            for name in sorted(signatures) if not name.startswith("__")]


def _model_section(summary: dict[str, Any]) -> str:
    parts = ['<section id="model"><h2>Pushed model</h2>']
    check = summary.get("serving_check")
    if check:
        parts.append('<p class="ok">Serving check passed: TF Serving registers every op of the model.</p>'
                     if check["passed"] else
                     f'<p class="bad">Serving check failed: ops not in TF Serving: '
                     f'{_e(", ".join(check["disallowed_ops"]))}</p>')
    if summary.get("pushed"):
        destination = summary["pushed_to"]
        parts.append(f"<p>Version <code>{_e(os.path.basename(destination))}</code> pushed to "
                     f"<code>{_e(destination)}</code>.</p>")
        parts.append(_table(["signature", "inputs", "outputs"], _signature_rows(destination)))
    else:
        parts.append("<p>Nothing was pushed in this run; the serving directory is unchanged.</p>")
    parts.append("</section>")
    return "".join(parts)


def render(output_dir: str, summary: dict[str, Any] | None = None) -> str:
    """The report page of the latest run in `output_dir` (a `mtrec run` output directory).

    `summary` is the run's summary; by default the one the run wrote (`last_run.json`).
    """
    paths = RunPaths(os.path.abspath(output_dir))
    if not os.path.isfile(paths.metadata):
        raise FileNotFoundError(f"{output_dir}: no metadata.sqlite (not an mtrec run directory)")
    if summary is None:
        summary = {}
        if os.path.isfile(paths.summary):
            with open(paths.summary, encoding="utf-8") as handle:
                summary = json.load(handle)
    store = run_summary.open_store(paths.metadata)
    artifacts = run_summary.latest_run_artifacts(store)
    status = summary.get("status", "unknown")
    title = f"mtrec run: {status}"
    body = [f"<h1>{_e(title)}</h1>",
            f"<p><code>{_e(paths.output_dir)}</code>, {_e(summary.get('seconds', '?'))} s.</p>"]
    if summary.get("error"):
        body.append(f'<p class="bad">{_e(summary["error"])}</p>')
    body += [_data_section(artifacts, summary), _training_section(store, artifacts),
             _evaluation_section(artifacts, summary), _retrieval_section(summary), _model_section(summary)]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>")


def write(output_dir: str, summary: dict[str, Any] | None = None, output_path: str | None = None) -> str:
    """Writes the report (default: `output_dir`/report.html) atomically; returns its path."""
    path = os.path.abspath(output_path or os.path.join(output_dir, REPORT_FILE))
    page = render(output_dir, summary)
    write_atomically(path, page)
    return path
