"""The user-behaviour part of `mtrec benchmark movielens`: sequence user tower and target attention against the
mean tower, and fine-tuning's cost per distinct text against per event and against the frozen encoder.

Every variant reads the text frozen and uses the architecture validation chose for the mean tower's text model;
each picks its own epochs on the same validation split, then trains on the whole training split and is measured
on the test split. Fine-tuning runs MiniLM's top layers per batch, so on a CPU it is measured by throughput over
a few steps, and by quality after one epoch against the frozen encoder after one epoch.
"""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool
from typing import Any

from benchmarks import movielens

MEAN = "mean tower"
# variant -> (user tower, target attention); the mean tower is the main text model, trained once.
VARIANTS = {"transformer tower": ("transformer", False), "mean tower + target attention": ("mean", True),
            "transformer tower + target attention": ("transformer", True)}
# The throughput comparison trains the transformer tower: a batch's texts are its items and every history position.
THROUGHPUT_TOWER = "transformer"
MIN_TOP_100_GAIN = 0.02
MIN_DISTINCT_SPEEDUP = 3.0


def _measured(result: dict[str, Any]) -> dict[str, Any]:
    return {key: result[key] for key in ("examples_per_second", "peak_memory_mb")}


def compare(items_path: str, directory: str, architecture: str, mean: dict[str, Any], settings: movielens.Settings,
            log: Any) -> dict[str, Any]:
    """The variants' test figures beside `mean` (the chosen text model's row), fine-tuning's throughput and its
    one-epoch quality; `directory` holds the protocol's transformed splits."""
    rows = {MEAN: {**mean, "name": MEAN}}
    selection = {}
    for name, (tower, attention) in VARIANTS.items():
        options = {"user_tower": tower, "target_attention": attention}
        log(f"select: {name} (epochs)")
        fitted = movielens.run_job(movielens.Job(name, "mtrec", directory, "fit", ("validation",), settings.max_epochs,
                                                 items_path, architecture, "frozen", per_epoch=True,
                                                 model_options=options), settings)
        _, epochs, score = movielens.select([{**fitted, "architecture": architecture}])
        selection[name] = {"epochs": epochs, "validation_score": score}
        log(f"train: {name} ({epochs} epochs)")
        result = movielens.run_job(movielens.Job(name, "mtrec", directory, "train", ("test",), epochs, items_path,
                                                 architecture, "frozen", model_options=options), settings)
        rows[name] = {**movielens.row(result, "test"), "architecture": architecture}
        log(movielens.summary(rows[name]))
    return {"architecture": architecture, "models": list(rows.values()), "selection": selection,
            "finetune_throughput": finetune_throughput(items_path, directory, architecture, settings, log),
            "finetune_quality": finetune_quality(items_path, directory, architecture, settings, log)}


def finetune_throughput(items_path: str, directory: str, architecture: str, settings: movielens.Settings,
                        log: Any) -> dict[str, Any]:
    """Training examples/s and peak memory over `settings.throughput_steps` batches (after one to compile) of the
    transformer tower: frozen, fine-tuned per distinct text, fine-tuned per event. A job whose process dies (out of
    memory: per event, a batch of B events encodes B x (history + 1) texts with their gradients) is reported as
    failed, and the others still are."""
    result = {"user_tower": THROUGHPUT_TOWER, "batch_size": settings.throughput_batch_size,
              "steps": settings.throughput_steps}
    for name, mode, distinct in (("frozen", "frozen", True), ("finetune, per distinct text", "finetune", True),
                                 ("finetune, per event", "finetune", False)):
        log(f"throughput: {name}")
        try:
            measured = movielens.run_job(movielens.Job(
                name, "mtrec", directory, "train", (), 1, items_path, architecture, mode,
                model_options={"user_tower": THROUGHPUT_TOWER}, distinct_texts=distinct,
                steps=settings.throughput_steps), settings)
        except BrokenProcessPool:
            result[name] = {"failed": "the job's process died (out of memory)"}
            log(f"  {result[name]['failed']}")
            continue
        result[name] = _measured(measured)
        log(f"  {measured['examples_per_second']:.1f} ex/s, {measured['peak_memory_mb']:.0f} MB")
    return result


def finetune_quality(items_path: str, directory: str, architecture: str, settings: movielens.Settings,
                     log: Any) -> dict[str, Any]:
    """The mean tower after one epoch with the text fine-tuned (per distinct text) and frozen: test figures."""
    result = {}
    for name, mode in (("frozen, 1 epoch", "frozen"), ("finetune, 1 epoch", "finetune")):
        log(f"train: mean tower, {name}")
        measured = movielens.run_job(movielens.Job(name, "mtrec", directory, "train", ("test",), 1, items_path,
                                                   architecture, mode), settings)
        result[name] = movielens.row(measured, "test")
        log(movielens.summary(result[name]))
    return result


def targets(report: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets: the best new variant gains top-100 accuracy at equal or better RMSE; per-distinct-text
    fine-tuning is faster than per-event."""
    by_name = {model["name"]: model for model in report["models"]}
    mean = by_name[MEAN]
    new = [by_name[name] for name in VARIANTS]
    eligible = [model for model in new if model["rmse"] <= mean["rmse"]] or new
    best = max(eligible, key=lambda model: model["top_100_accuracy"])
    gain = best["top_100_accuracy"] - mean["top_100_accuracy"]
    throughput = report["finetune_throughput"]
    distinct, per_event = throughput["finetune, per distinct text"], throughput["finetune, per event"]
    speedup = (distinct["examples_per_second"] / per_event["examples_per_second"]
               if "failed" not in distinct and "failed" not in per_event else None)
    return {
        f"best user-behaviour variant top_100_accuracy >= mean tower + {MIN_TOP_100_GAIN} at equal or better RMSE": {
            "variant": best["name"], "gain": gain, "rmse": best["rmse"], "mean_tower_rmse": mean["rmse"],
            "met": gain >= MIN_TOP_100_GAIN and best["rmse"] <= mean["rmse"]},
        f"finetune per distinct text >= {MIN_DISTINCT_SPEEDUP:.0f}x per event (examples/s)": {
            "ratio": speedup, "met": speedup is not None and speedup >= MIN_DISTINCT_SPEEDUP,
            **({} if speedup is not None else {"failed": "a throughput job failed"})},
    }


def markdown(report: dict[str, Any]) -> list[str]:
    lines = ["", f"User behaviour (frozen text, {report['architecture']}; each variant's epochs chosen on validation; "
             "test split):", "", "| user tower | top-100 acc | Recall@10 | RMSE | click AUC | train ex/s | peak MB |",
             "|---|---|---|---|---|---|---|"]
    for model in report["models"]:
        lines.append(f"| {model['name']} ({model['epochs']} ep) | {model['top_100_accuracy']:.3f} | "
                     f"{model['recall_at_10']:.3f} | {model['rmse']:.3f} | {model['click_auc']:.3f} | "
                     f"{model['examples_per_second']:.0f} | {model['peak_memory_mb']:.0f} |")
    throughput = report["finetune_throughput"]
    lines += ["", f"Fine-tuning cost ({throughput['user_tower']} tower, batch {throughput['batch_size']}, "
              f"{throughput['steps']} steps after one to compile):", ""]
    for name in ("frozen", "finetune, per distinct text", "finetune, per event"):
        figures = throughput[name]
        lines.append(f"- {name}: " + (figures["failed"] if "failed" in figures else
                                      f"{figures['examples_per_second']:.1f} examples/s, "
                                      f"peak {figures['peak_memory_mb']:.0f} MB"))
    quality = report["finetune_quality"]
    frozen, tuned = quality["frozen, 1 epoch"], quality["finetune, 1 epoch"]
    verdict = ("beats" if tuned["top_100_accuracy"] > frozen["top_100_accuracy"] and tuned["rmse"] < frozen["rmse"]
               else "does not beat")
    lines += ["", f"Fine-tuning against frozen after one epoch each (mean tower): fine-tuned {verdict} frozen "
              f"(top-100 {tuned['top_100_accuracy']:.3f} vs {frozen['top_100_accuracy']:.3f}, RMSE "
              f"{tuned['rmse']:.3f} vs {frozen['rmse']:.3f}, {tuned['examples_per_second']:.0f} vs "
              f"{frozen['examples_per_second']:.0f} examples/s)."]
    return lines
