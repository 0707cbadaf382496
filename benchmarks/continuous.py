"""`mtrec benchmark continuous`: what retraining every day buys on KuaiRand-Pure's daily logs, and what warm
starting saves.

Protocol. Each day d from `first_end_day` on, a model trains on the window of the `window_days` days ending at d
and is tested on day d + 1, never seen in training. Three models per day, side by side in one run:
- cold start: trained from scratch for the chosen epochs; the epochs are chosen once, on the first window alone
  (trained on its days but the last, validated on its last day);
- warm start: yesterday's warm model carried into today's vocabularies (models/warm_start.py, as the Trainer does
  with `training.warm_start`: embedding rows by id string, other weights by shape), then one epoch on the window;
  the first day's warm model is the first day's cold model;
- warm start on the new day only: the same, its epoch over the window's newest day alone (what the issue's
  targets do not ask; shown beside them, as the cheaper way to keep a model current);
- no retraining: the first day's model, applied to every later test day through its own Transform graph.
Each window has its own Transform (vocabularies analysed on the window), as a pipeline run on that window would.
Examples come from ExampleGen's own functions; each event's history holds the user's earlier events of the whole
log, as serving would see them. The model is the one `benchmark kuairand` chose: MMoE with ESMM for the post-click
signals. Each day trains in a process of its own. Reported per day and task: test AUC and GAUC; per day: the
training seconds of each model (warm: the carry included).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import os
import shutil
import time
from typing import Any

import numpy as np

from benchmarks import kuairand, process, reports
from components.example_gen import executor, input_contract
from models import features

TARGET_TASKS = ("click", "like")
MODELS = ("warm", "warm_day", "cold", "frozen")
WARM_MODELS = ("warm", "warm_day")
LABELS = {"warm": "warm start", "warm_day": "warm start, new day only", "cold": "cold start",
          "frozen": "no retraining"}
AUC_TOLERANCE = 0.005
TIME_RATIO = 0.5
ID_TABLES = ("user_id_embedding", "item_id_embedding")  # the id tables whose carry the report shows


@dataclasses.dataclass
class Settings:
    """What a run trains. The defaults are the committed benchmark; tests shrink them."""

    window_days: int = 7
    first_end_day: str = "2022-05-01"
    last_test_day: str = "2022-05-08"
    max_epochs: int = 4
    warm_epochs: int = 1
    batch_size: int = 1024
    learning_rate: float = 0.003
    history_length: int = 20
    architecture: str = "mmoe"
    seed: int = 42


def _day(day: str, delta: int) -> str:
    return (datetime.date.fromisoformat(day) + datetime.timedelta(days=delta)).isoformat()


def end_days(settings: Settings) -> list[str]:
    """The last day of every window: from the first to the day before the last test day."""
    days, day = [], settings.first_end_day
    while day < settings.last_test_day:
        days.append(day)
        day = _day(day, 1)
    return days


def window(end_day: str, settings: Settings) -> list[str]:
    return [_day(end_day, -back) for back in reversed(range(settings.window_days))]


# === Data ===

def _days_dir(work_dir: str) -> str:
    return os.path.join(work_dir, "days")


def prepare(data_dir: str, work_dir: str, settings: Settings, log: Any = print) -> dict[str, Any]:
    """Converts the logs and writes each day's examples (ExampleGen's functions, the history over the whole log) to
    `work_dir`/days/DAY.tfrecord; returns the protocol's figures."""
    import tensorflow as tf

    from pipeline.data import kuairand as kuairand_data

    declared = kuairand_data.declared_features()
    converted = kuairand_data.convert(data_dir, os.path.join(work_dir, "csv"))
    items = input_contract.read_items(converted.items, require_text=False, declared=declared)
    users = input_contract.read_users(converted.users, declared)
    by_user: dict[str, list] = collections.defaultdict(list)
    for line, event in enumerate(input_contract.read_events(converted.events, items, features.label_columns(
            kuairand.tasks()), declared), start=2):
        by_user[event.user_id].append((line, event, items[event.item_id]))
    by_day: dict[str, list[bytes]] = collections.defaultdict(list)
    for user, events in by_user.items():
        for entry in executor.user_timeline(events, settings.history_length, "random", 0.0, 0):
            if isinstance(entry, input_contract.BadRow):
                continue  # a repeated exposure
            _, event, item, history = entry
            example = executor.to_example(event, item, history, users.get(user), declared)
            executor.add_slices(("", example), {}, {})  # the slices are not read here; the schema wants them
            by_day[kuairand.day(event.timestamp)].append(example.SerializeToString())
    os.makedirs(_days_dir(work_dir), exist_ok=True)
    for day, records in by_day.items():
        with tf.io.TFRecordWriter(os.path.join(_days_dir(work_dir), f"{day}.tfrecord")) as writer:
            for record in records:
                writer.write(record)
    needed = sorted({day for end in end_days(settings) for day in (*window(end, settings), _day(end, 1))})
    missing = [day for day in needed if day not in by_day]
    if missing:
        raise input_contract.InputError(f"{data_dir}: the protocol needs days the log lacks: {', '.join(missing)}")
    log(f"examples per day: {', '.join(f'{day} {len(by_day[day])}' for day in sorted(by_day))}")
    return {"examples_per_day": {day: len(by_day[day]) for day in sorted(by_day)}, "users": len(by_user),
            "videos": len(items)}


def _examples(work_dir: str, days: list[str]) -> list[Any]:
    import tensorflow as tf

    found = []
    for day in days:
        for record in tf.data.TFRecordDataset(os.path.join(_days_dir(work_dir), f"{day}.tfrecord")):
            found.append(tf.train.Example.FromString(record.numpy()))
    return found


def _columns(tft_output: Any, examples: list[Any]) -> dict[str, np.ndarray]:
    """The transformed columns of `examples` and their user ids (for GAUC)."""
    from benchmarks import in_process

    columns = in_process.transform(tft_output, examples)
    columns["user_id"] = np.array([e.features.feature[features.USER_ID].bytes_list.value[0].decode()
                                   for e in examples])
    return columns


def _transform(work_dir: str, name: str, days: list[str], settings: Settings) -> Any:
    """The Transform graph analysed on `days` (written once to `work_dir`/transforms/`name`)."""
    import tensorflow_transform as tft

    from benchmarks import in_process
    from pipeline.data import kuairand as kuairand_data

    directory = os.path.join(work_dir, "transforms", name)
    if os.path.isdir(directory):
        return tft.TFTransformOutput(directory)
    declared = kuairand_data.declared_features()
    transform_config = {"text_preset": "minilm", "text_max_length": 3, "history_length": settings.history_length,
                        "max_categories": 4, "tasks": [dataclasses.asdict(task) for task in kuairand.tasks()],
                        "features": [dataclasses.asdict(feature) for feature in declared]}
    return in_process.analyze(_examples(work_dir, days), transform_config, directory, declared, kuairand.tasks())


# === Models ===

def custom_config(settings: Settings) -> dict[str, Any]:
    """The Trainer's custom config of the benchmark's model: the chosen KuaiRand model, text off."""
    from pipeline import config
    from pipeline.data import kuairand as kuairand_data

    variant = kuairand.Variant("mtrec", tuple(task.name for task in kuairand.tasks()), settings.architecture,
                               esmm=True)
    return {
        "model": {**dataclasses.asdict(dataclasses.replace(config.Model(), architecture=settings.architecture)),
                  "tasks": kuairand.variant_tasks(variant)},
        "text_encoder": dataclasses.asdict(config.TextEncoder(mode="off")),
        "training": dataclasses.asdict(config.Training(batch_size=settings.batch_size,
                                                       learning_rate=settings.learning_rate, seed=settings.seed)),
        "features": [dataclasses.asdict(feature) for feature in kuairand_data.declared_features()],
    }


def _dataset(columns: dict[str, np.ndarray], settings: Settings) -> Any:
    import tensorflow as tf

    inputs = {key: value for key, value in columns.items() if key != "user_id"}
    return tf.data.Dataset.from_tensor_slices(inputs).shuffle(
        len(columns["user_id"]), seed=settings.seed, reshuffle_each_iteration=True).batch(settings.batch_size)


def _model(work_dir: str, tft_output: Any, dataset: Any, settings: Settings) -> Any:
    import keras
    import tensorflow as tf

    from models import trainer
    from pipeline.data import kuairand as kuairand_data

    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    keras.utils.set_random_seed(settings.seed)
    catalogue = list(input_contract.read_items(os.path.join(work_dir, "csv", input_contract.ITEMS_FILE), False,
                                               kuairand_data.declared_features()).values())
    return trainer.compiled_model(tft_output, custom_config(settings), dataset, catalogue)


def _fit(model: Any, dataset: Any, epochs: int) -> float:
    started = time.perf_counter()
    model.fit(dataset, epochs=epochs, verbose=0)
    return time.perf_counter() - started


def _metrics(model: Any, columns: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    names = tuple(task.name for task in kuairand.tasks())
    return kuairand.task_metrics(columns, kuairand.predict(model, columns, names))


def choose_epochs(work_dir: str, settings: Settings) -> dict[str, Any]:
    """Runs in a fresh process: the cold start's epochs, chosen on the first window alone (its days but the last
    train, its last day validates; the criterion is the mean AUC of the binary tasks)."""
    days = window(settings.first_end_day, settings)
    tft_output = _transform(work_dir, "choice", days[:-1], settings)
    train = _columns(tft_output, _examples(work_dir, days[:-1]))
    validation = _columns(tft_output, _examples(work_dir, days[-1:]))
    dataset = _dataset(train, settings)
    model = _model(work_dir, tft_output, dataset, settings)
    scores = []
    for _ in range(settings.max_epochs):
        _fit(model, dataset, 1)
        scores.append(kuairand.mean_auc(_metrics(model, validation)))
    return {"epochs": int(np.argmax(scores)) + 1, "validation_mean_auc": scores,
            "train_days": f"{days[0]}..{days[-2]}", "validation_day": days[-1]}


def _state_dir(work_dir: str, name: str, day: str) -> str:
    return os.path.join(work_dir, "models", name, day)


def _warm(work_dir: str, name: str, end_day: str, tft_output: Any, dataset: Any, test: dict[str, np.ndarray],
          settings: Settings) -> dict[str, Any]:
    """Warm start `name`: yesterday's model of that name carried into today's vocabularies, trained
    `settings.warm_epochs` on `dataset`, tested, and saved as today's (yesterday's state removed)."""
    from models import trainer, warm_start

    config = custom_config(settings)
    model = _model(work_dir, tft_output, dataset, settings)
    started = time.perf_counter()
    trainer.build_variables(model, dataset)
    report = warm_start.carry(model, tft_output, config, _state_dir(work_dir, name, _day(end_day, -1)))
    carry_seconds = time.perf_counter() - started
    fit_seconds = _fit(model, dataset, settings.warm_epochs)
    warm_start.save_state(model, tft_output, config, _state_dir(work_dir, name, end_day))
    shutil.rmtree(_state_dir(work_dir, name, _day(end_day, -1)))
    return {"train_seconds": carry_seconds + fit_seconds, "carry_seconds": carry_seconds,
            "epochs": settings.warm_epochs, "test": _metrics(model, test), "carried": {
                "tables": {table: dataclasses.asdict(rows) for table, rows in report.tables.items()},
                "dense": len(report.dense), "not_carried": report.not_carried}}


def train_day(work_dir: str, end_day: str, settings: Settings, epochs: int, first: bool) -> dict[str, Any]:
    """Runs in a fresh process: the cold and the warm models of the window ending at `end_day`, tested on the next
    day; each warm one carried from yesterday's model of its kind. On the first day the warm models are the cold
    one, and the no-retraining model's figures on every test day are taken, through this window's Transform."""
    from models import warm_start

    test_day = _day(end_day, 1)
    tft_output = _transform(work_dir, end_day, window(end_day, settings), settings)
    train = _columns(tft_output, _examples(work_dir, window(end_day, settings)))
    test = _columns(tft_output, _examples(work_dir, [test_day]))
    dataset = _dataset(train, settings)
    cold = _model(work_dir, tft_output, dataset, settings)
    result: dict[str, Any] = {"end_day": end_day, "test_day": test_day, "train_examples": len(train["user_id"]),
                              "test_examples": len(test["user_id"])}
    result["cold"] = {"train_seconds": _fit(cold, dataset, epochs), "epochs": epochs, "test": _metrics(cold, test)}
    if first:
        for name in WARM_MODELS:
            warm_start.save_state(cold, tft_output, custom_config(settings), _state_dir(work_dir, name, end_day))
            result[name] = {**result["cold"], "carried": None}
        test_days = [_day(end, 1) for end in end_days(settings)]
        result["frozen"] = {day: _metrics(cold, _columns(tft_output, _examples(work_dir, [day]))) for day in test_days}
        return result
    result["warm"] = _warm(work_dir, "warm", end_day, tft_output, dataset, test, settings)
    newest = _dataset(_columns(tft_output, _examples(work_dir, [end_day])), settings)
    result["warm_day"] = _warm(work_dir, "warm_day", end_day, tft_output, newest, test, settings)
    return result


# === The run ===

def run(data_dir: str, work_dir: str, settings: Settings | None = None, log: Any = print) -> dict[str, Any]:
    """The whole benchmark (`settings`: the committed defaults unless given); returns the report (see `write`)."""
    settings = settings or Settings()
    protocol = prepare(data_dir, work_dir, settings, log)
    log("choosing the cold start's epochs on the first window")
    choice = process.run_with_peak(choose_epochs, work_dir, settings)
    days = []
    for index, end_day in enumerate(end_days(settings)):
        log(f"window ending {end_day}: cold ({choice['epochs']} epochs) and warm ({settings.warm_epochs}) start")
        days.append(process.run_with_peak(train_day, work_dir, end_day, settings, choice["epochs"], index == 0))
    frozen = days[0].pop("frozen")
    for day in days:
        day["frozen"] = {"test": frozen[day["test_day"]]}
    report = {"dataset": "KuaiRand-Pure", "machine": reports.machine(), "settings": dataclasses.asdict(settings),
              "protocol": {**protocol, "epoch_choice": choice}, "days": days}
    report["summary"] = summary(days)
    report["targets"] = targets(report)
    return report


def summary(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model: each binary task's test AUC and GAUC averaged over the days, and the total training seconds."""
    result = {}
    for name in MODELS:
        result[name] = {task: {metric: float(np.mean([day[name]["test"][task][metric] for day in days]))
                               for metric in ("auc", "gauc")} for task in kuairand.BINARY_TASKS}
        if name != "frozen":
            result[name]["train_seconds"] = float(sum(day[name]["train_seconds"] for day in days[1:]))
    return result


def targets(report: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, for the warm start over the window: within AUC_TOLERANCE of cold start on click and
    like (mean over the days), in at most TIME_RATIO of its training time (the days that warm started), and both
    beating no retraining. The same checks for the warm start over the newest day, named as such."""
    mean = report["summary"]
    result: dict[str, Any] = {}
    for warm_name, suffix in (("warm", ""), ("warm_day", ", new day only")):
        for task in TARGET_TASKS:
            warm, cold, frozen = (mean[name][task]["auc"] for name in (warm_name, "cold", "frozen"))
            result[f"warm start{suffix} within {AUC_TOLERANCE} AUC of cold start ({task})"] = {
                "warm": warm, "cold": cold, "met": warm >= cold - AUC_TOLERANCE}
            result[f"warm start{suffix} and cold start beat no retraining ({task})"] = {
                "warm": warm, "cold": cold, "no_retraining": frozen, "met": min(warm, cold) > frozen}
        ratio = mean[warm_name]["train_seconds"] / mean["cold"]["train_seconds"]
        result[f"warm start{suffix} training time <= {TIME_RATIO} of cold start"] = {
            "warm_seconds": mean[warm_name]["train_seconds"], "cold_seconds": mean["cold"]["train_seconds"],
            "ratio": ratio, "met": ratio <= TIME_RATIO}
    return result


def markdown(report: dict[str, Any]) -> str:
    settings, days, mean = report["settings"], report["days"], report["summary"]
    choice = report["protocol"]["epoch_choice"]
    lines = [f"# {report['dataset']}: continuous training, warm start against cold start and no retraining", "",
             f"Each day d from {days[0]['end_day']} to {days[-1]['end_day']}: train on the {settings['window_days']} "
             f"days ending at d, test on d + 1. Cold start: {choice['epochs']} epochs (chosen on "
             f"{choice['validation_day']} after training on {choice['train_days']}); warm start: yesterday's warm "
             f"model, {settings['warm_epochs']} epoch over the window (or over its newest day only); no retraining: "
             f"the {days[0]['end_day']} model. Every figure "
             f"comes from the same run ({report['machine']}).", "",
             "Test AUC per day (click / like):", "",
             "| window ends | test day | test events | " + " | ".join(LABELS[name] for name in MODELS)
             + " | train s (warm / new day / cold) |", "|---" * (len(MODELS) + 4) + "|"]
    for day in days:
        cells = [" / ".join(f"{day[name]['test'][task]['auc']:.4f}" for task in TARGET_TASKS) for name in MODELS]
        lines.append(f"| {day['end_day']} | {day['test_day']} | {day['test_examples']} | " + " | ".join(cells)
                     + " | " + " / ".join(f"{day[name]['train_seconds']:.1f}" for name in ("warm", "warm_day", "cold"))
                     + " |")
    lines += ["", "Mean over the days, AUC / GAUC per task:", "",
              "| model | " + " | ".join(kuairand.BINARY_TASKS) + " | train s (days 2+) |",
              "|---" * (len(kuairand.BINARY_TASKS) + 2) + "|"]
    for name in MODELS:
        cells = [f"{mean[name][task]['auc']:.4f} / {mean[name][task]['gauc']:.4f}" for task in kuairand.BINARY_TASKS]
        seconds = f"{mean[name]['train_seconds']:.0f}" if "train_seconds" in mean[name] else ""
        lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + f" | {seconds} |")
    lines += ["", "What each warm start (over the window) carried (known ids keep their rows, new ids start fresh):",
              "",
              "| window ends | " + " | ".join(ID_TABLES) + " | other weights | not carried |",
              "|---" * (len(ID_TABLES) + 3) + "|"]
    for day in days[1:]:
        carried = day["warm"]["carried"]
        rows = [carried["tables"].get(name, {}) for name in ID_TABLES]
        lines.append(f"| {day['end_day']} | " + " | ".join(
            f"{table.get('known', 0)} known, {table.get('new', 0)} new" for table in rows)
            + f" | {carried['dense']} | {len(carried['not_carried'])} |")
    lines += reports.target_lines(report["targets"])
    return "\n".join(lines) + "\n"


def _draw(report: dict[str, Any], axes: Any) -> None:
    days = report["days"]
    ticks = [day["test_day"][5:] for day in days]
    for axis, task in zip(axes[:-1], TARGET_TASKS, strict=True):
        for name in MODELS:
            axis.plot(ticks, [day[name]["test"][task]["auc"] for day in days], marker="o", label=LABELS[name])
        axis.set_title(f"{task}: test AUC on the next day")
        axis.set_xlabel("test day")
        axis.legend()
    trained = ("cold", "warm", "warm_day")
    width = 0.8 / len(trained)
    for offset, name in enumerate(trained):
        axes[-1].bar([index + (offset - 1) * width for index in range(len(days))],
                     [day[name]["train_seconds"] for day in days], width=width, label=LABELS[name])
    axes[-1].set_xticks(range(len(days)), ticks)
    axes[-1].set_title("training seconds per day")
    axes[-1].legend()


def write(report: dict[str, Any], output_dir: str, name: str = "continuous") -> list[str]:
    """Writes `name`.json, .md and .png to `output_dir`; returns the paths."""
    return reports.write(report, output_dir, name, markdown(report), lambda path: reports.save_figure(
        path, len(TARGET_TASKS) + 1, (5 * (len(TARGET_TASKS) + 1), 4.5), lambda axes: _draw(report, axes)))
