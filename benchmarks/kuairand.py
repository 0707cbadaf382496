"""`mtrec benchmark kuairand`: per-task ranking quality on KuaiRand-Pure's real multi-signal logs.

Protocol: the exposures of 2022-04-25..04-29 (Beijing time) train, 04-30 chooses (epochs, architecture,
regularisation, boosting rounds), 05-01..05-08 test and are never used for a choice. Tasks: click, long view,
like, follow, comment (binary; AUC, GAUC, log loss on every test exposure) and the watch ratio (regression through
log1p; RMSE on its own scale). Every model reads the same features: user and video ids, the videos' tags, the
declared features of the KuaiRand source (tab, hour, weekday, the user table's categories, author, music, video
type and duration) and, where the model can take a sequence, the user's earlier exposures. In one run, each model
in its own process (so its peak memory is its own):
- logistic regression per task (one-hot features, the history multi-hot; L2 strength chosen on 04-30) and
  LightGBM per task (ids and categories as native categorical features; rounds by early stopping on 04-30);
- mtrec single-task models, one per task;
- mtrec multi-task: shared-bottom, MMoE and PLE, and the ESMM variant of the best of them (like, follow and
  comment predicted as p(click) * p(signal | click)).
Features come from the pipeline's own ExampleGen functions and Transform graph.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import os
import time
from typing import Any

import numpy as np

from benchmarks import process, reports
from components.example_gen import executor, input_contract
from models import features
from models.metrics import auc, gauc

TRAIN_LAST_DAY = "2022-04-29"
VALIDATION_DAY = "2022-04-30"
UTC_OFFSET_SECONDS = 8 * 3600  # the logs' days are Beijing days
BINARY_TASKS = ("click", "long_view", "like", "follow", "comment")
SPARSE_TASKS = ("like", "follow", "comment")
POST_CLICK_TASKS = ("like", "follow", "comment")  # ESMM's conditioned tasks
LIGHTGBM_TARGET_TASKS = ("click", "long_view", "like")
ARCHITECTURES = ("shared_bottom", "mmoe", "ple")
EVAL_BATCH = 4096
LOGISTIC_C = (0.03, 0.3, 3.0)
SPLITS = ("validation", "test")


@dataclasses.dataclass
class Settings:
    """What a run trains. The defaults are the committed benchmark; tests shrink them."""

    max_epochs: int = 4
    batch_size: int = 1024
    learning_rate: float = 0.003
    history_length: int = 20
    architectures: tuple[str, ...] = ARCHITECTURES
    lightgbm_rounds: int = 1000
    seed: int = 42
    behaviour_architecture: str = "mmoe"  # the user-behaviour comparison's model: the committed chosen, with ESMM


def tasks() -> list[Any]:
    """KuaiRand's ranking tasks (pipeline.config.kuairand_tasks without retrieval): what every model predicts."""
    from pipeline import config

    return [task for task in config.kuairand_tasks() if task.type != "retrieval"]


def regression_task() -> str:
    (name,) = [task.name for task in tasks() if task.type == "regression"]
    return name


def day(timestamp: int) -> str:
    return datetime.datetime.fromtimestamp(timestamp + UTC_OFFSET_SECONDS, datetime.UTC).date().isoformat()


def split_of(timestamp: int) -> str:
    name = day(timestamp)
    return "train" if name <= TRAIN_LAST_DAY else "validation" if name == VALIDATION_DAY else "test"


# === Data ===

def prepare(data_dir: str, work_dir: str, settings: Settings, log: Any = print) -> dict[str, Any]:
    """Converts the logs, builds every split's examples with ExampleGen's functions, runs Transform (analysing
    the train split only) and saves each split's columns as .npz in `work_dir`; returns the split sizes."""
    from benchmarks import in_process
    from pipeline.data import kuairand

    declared = kuairand.declared_features()
    converted = kuairand.convert(data_dir, os.path.join(work_dir, "csv"))
    items = input_contract.read_items(converted.items, require_text=False, declared=declared)
    users = input_contract.read_users(converted.users, declared)
    labels = features.label_columns(tasks())
    by_user: dict[str, list] = collections.defaultdict(list)
    for line, event in enumerate(input_contract.read_events(converted.events, items, labels, declared), start=2):
        by_user[event.user_id].append((line, event, items[event.item_id]))
    rows: dict[str, list] = {"train": [], "validation": [], "test": []}
    repeats = 0
    for user, events in by_user.items():
        # The time-ordered history of every exposure (strictly earlier ones); repeats of an exposure are dropped.
        for entry in executor.user_timeline(events, settings.history_length, "random", 0.0, 0):
            if isinstance(entry, input_contract.BadRow):
                repeats += 1
                continue
            _, event, item, history = entry
            example = executor.to_example(event, item, history, users.get(user), declared)
            rows[split_of(event.timestamp)].append(example)
    log(f"examples: {', '.join(f'{name} {len(found)}' for name, found in rows.items())}; {repeats} repeats dropped")
    def counts(key: str) -> dict[str, int]:
        return collections.Counter(e.features.feature[key].bytes_list.value[0].decode() for e in rows["train"])

    item_counts, user_counts = counts(features.ITEM_ID), counts(features.USER_ID)
    for split in rows.values():
        for example in split:
            executor.add_slices(("", example), item_counts, user_counts)
    transform_config = {"text_preset": "minilm", "text_max_length": 3, "history_length": settings.history_length,
                        "max_categories": 4, "tasks": [dataclasses.asdict(task) for task in tasks()],
                        "features": [dataclasses.asdict(feature) for feature in declared]}
    tft_output = in_process.analyze(rows["train"], transform_config, os.path.join(work_dir, "transform"), declared,
                                    tasks())
    for name, split in rows.items():
        columns = in_process.transform(tft_output, split)
        user_ids = np.array([e.features.feature[features.USER_ID].bytes_list.value[0].decode() for e in split])
        np.savez(os.path.join(work_dir, f"{name}.npz"), user_id=user_ids, **columns)
    return {"days": {"train": f"..{TRAIN_LAST_DAY}", "validation": VALIDATION_DAY, "test": "2022-05-01..05-08"},
            "examples": {name: len(split) for name, split in rows.items()}, "repeats_dropped": repeats,
            "users": len(by_user), "videos": len(items)}


def load(work_dir: str, name: str) -> dict[str, np.ndarray]:
    with np.load(os.path.join(work_dir, f"{name}.npz")) as data:
        return {key: data[key] for key in data.files}


# === Metrics ===

def label(split: dict[str, np.ndarray], task: str) -> np.ndarray:
    """A task's label on its own scale (the watch ratio back from log1p)."""
    value = split[features.transformed_label(task)]
    return np.expm1(value) if task == regression_task() else value


def task_metrics(split: dict[str, np.ndarray], predictions: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per task: AUC, GAUC (per-user AUC weighted by impressions) and log loss; RMSE for the regression task."""
    result = {}
    for task, predicted in predictions.items():
        truth = label(split, task)
        if task == regression_task():
            result[task] = {"rmse": float(np.sqrt(np.mean((predicted - truth) ** 2)))}
            continue
        p = np.clip(predicted.astype(np.float64), 1e-7, 1 - 1e-7)
        result[task] = {"auc": auc(truth, p), "gauc": gauc(split["user_id"], truth, p),
                        "logloss": float(-np.mean(truth * np.log(p) + (1 - truth) * np.log(1 - p)))}
    return result


def mean_auc(metrics: dict[str, dict[str, float]]) -> float:
    """The validation criterion of a model or variant: the mean AUC of its binary tasks (RMSE's negative alone
    for a regression-only model)."""
    aucs = [value["auc"] for value in metrics.values() if "auc" in value]
    return float(np.mean(aucs)) if aucs else -next(iter(metrics.values()))["rmse"]


# === Baselines: one sparse design for logistic regression, native categories for LightGBM ===

def categorical_columns(split: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Index columns (0: missing): ids, the declared categorical features and the tags (multi-valued)."""
    from pipeline.data import kuairand

    names = [features.USER_INDEX, features.ITEM_INDEX, features.CATEGORY_INDICES,
             *(feature.input_name for feature in kuairand.declared_features() if not feature.is_dense)]
    return {name: split[name] for name in names}


def dense_columns(split: dict[str, np.ndarray]) -> np.ndarray:
    """The z-scored numeric features' (value, present) pairs."""
    from pipeline.data import kuairand

    return np.concatenate([split[feature.input_name] for feature in kuairand.declared_features() if feature.is_dense],
                          axis=1).astype(np.float32)


def sparse_design(splits: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    """One-hot (multi-hot for tags and history) design matrices over the same columns, sized by all splits."""
    from scipy import sparse

    columns = [categorical_columns(split) for split in splits.values()]
    sizes = {name: max(int(c[name].max()) for c in columns) + 1 for name in columns[0]}
    history_size = max(int(split[features.HISTORY_INDICES].max()) for split in splits.values()) + 1
    designs = {}
    for (name, split), categorical in zip(splits.items(), columns, strict=True):
        blocks = []
        for column, values in categorical.items():
            values = values.reshape(len(values), -1)
            blocks.append(_multi_hot(values, sizes[column]))
        blocks.append(_multi_hot(split[features.HISTORY_INDICES], history_size))
        blocks.append(sparse.csr_matrix(dense_columns(split)))
        designs[name] = sparse.hstack(blocks, format="csr")
    return designs


def _multi_hot(indices: np.ndarray, size: int) -> Any:
    """A CSR matrix with a 1 at each non-zero index of each row (index 0, missing or padding, left out)."""
    from scipy import sparse

    rows = np.repeat(np.arange(len(indices)), indices.shape[1])
    flat = indices.reshape(-1)
    keep = flat > 0
    return sparse.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], flat[keep])),
                             shape=(len(indices), size))


def table_design(split: dict[str, np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """A table for LightGBM: each categorical index a column (the first two tags), then the numeric pairs; and
    which columns are categorical."""
    parts = []
    for name, values in categorical_columns(split).items():
        values = values.reshape(len(values), -1)
        parts.append(values[:, :2] if name == features.CATEGORY_INDICES else values[:, :1])
    categorical = np.concatenate(parts, axis=1).astype(np.float32)
    return np.concatenate([categorical, dense_columns(split)], axis=1), list(range(categorical.shape[1]))


def train_logistic(work_dir: str, settings: Settings) -> dict[str, Any]:
    """Runs in a fresh process: logistic regression per binary task, ridge on log1p for the regression task,
    each with its L2 strength chosen on the validation day (the time counted includes the predictions)."""
    from sklearn.linear_model import LogisticRegression, Ridge

    splits = {name: load(work_dir, name) for name in ("train", *SPLITS)}
    designs = sparse_design(splits)
    predictions: dict[str, dict[str, np.ndarray]] = {name: {} for name in SPLITS}
    chosen, train_seconds = {}, 0.0
    for task in tasks():
        target = splits["train"][features.transformed_label(task.name)]
        best = None
        for c in LOGISTIC_C:
            started = time.perf_counter()
            if task.type == "binary":
                model = LogisticRegression(C=c, max_iter=300, solver="liblinear").fit(designs["train"], target)
                outputs = {name: model.predict_proba(designs[name])[:, 1] for name in SPLITS}
            else:
                model = Ridge(alpha=1.0 / c).fit(designs["train"], target)
                outputs = {name: np.expm1(model.predict(designs[name])) for name in SPLITS}
            train_seconds += time.perf_counter() - started
            score = mean_auc(task_metrics(splits["validation"], {task.name: outputs["validation"]}))
            if best is None or score > best[0]:
                best = (score, c, outputs)
        chosen[task.name] = best[1]
        for name in SPLITS:
            predictions[name][task.name] = best[2][name]
    return _baseline_result("logistic regression", splits, predictions, train_seconds, {"C": chosen})


def train_lightgbm(work_dir: str, settings: Settings) -> dict[str, Any]:
    """Runs in a fresh process: LightGBM per task, rounds by early stopping on the validation day."""
    import lightgbm

    splits = {name: load(work_dir, name) for name in ("train", *SPLITS)}
    tables = {name: table_design(split) for name, split in splits.items()}
    categorical = tables["train"][1]
    predictions: dict[str, dict[str, np.ndarray]] = {name: {} for name in SPLITS}
    rounds, train_seconds = {}, 0.0
    for task in tasks():
        binary = task.type == "binary"
        target = splits["train"][features.transformed_label(task.name)]
        params = {"objective": "binary" if binary else "regression", "learning_rate": 0.05, "num_leaves": 63,
                  "min_data_in_leaf": 50, "feature_fraction": 0.8, "cat_smooth": 10, "verbose": -1,
                  "num_threads": os.cpu_count() or 1, "seed": settings.seed}
        train = lightgbm.Dataset(tables["train"][0], target, categorical_feature=categorical, free_raw_data=False)
        valid = lightgbm.Dataset(tables["validation"][0], splits["validation"][features.transformed_label(task.name)],
                                 categorical_feature=categorical, reference=train)
        started = time.perf_counter()
        booster = lightgbm.train(params, train, settings.lightgbm_rounds, valid_sets=[valid],
                                 callbacks=[lightgbm.early_stopping(50, verbose=False)])
        train_seconds += time.perf_counter() - started
        rounds[task.name] = booster.best_iteration
        for name in SPLITS:
            output = booster.predict(tables[name][0], num_iteration=booster.best_iteration)
            predictions[name][task.name] = output if binary else np.expm1(output)
    return _baseline_result("LightGBM", splits, predictions, train_seconds, {"rounds": rounds})


def _baseline_result(name: str, splits: dict[str, dict[str, np.ndarray]], predictions: dict[str, dict[str, np.ndarray]],
                     train_seconds: float, chosen: dict[str, Any]) -> dict[str, Any]:
    examples = len(splits["train"]["user_id"]) * len(tasks())
    return {"name": name, "kind": "per task", "chosen": chosen,
            "validation": task_metrics(splits["validation"], predictions["validation"]),
            "test": task_metrics(splits["test"], predictions["test"]),
            "train_seconds": train_seconds, "examples_per_second": examples / train_seconds}


# === mtrec ===

@dataclasses.dataclass
class Variant:
    """One mtrec model: its tasks (names), architecture and whether post-click tasks use ESMM."""

    name: str
    task_names: tuple[str, ...]
    architecture: str = "mmoe"
    esmm: bool = False
    user_tower: str = "mean"


def variant_tasks(variant: Variant) -> list[dict[str, Any]]:
    chosen = []
    for task in tasks():
        if task.name not in variant.task_names:
            continue
        if variant.esmm and task.name in POST_CLICK_TASKS:
            task = dataclasses.replace(task, given="click", entire_space=True)
        chosen.append(dataclasses.asdict(task))
    return chosen


def train_mtrec(work_dir: str, variant: Variant, settings: Settings) -> dict[str, Any]:
    """Runs in a fresh process: trains `variant` epoch by epoch, measuring each epoch on both days; the epoch is
    chosen on the validation day."""
    import keras
    import tensorflow as tf
    import tensorflow_transform as tft

    from models import trainer
    from pipeline import config
    from pipeline.data import kuairand

    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    keras.utils.set_random_seed(settings.seed)
    splits = {name: load(work_dir, name) for name in ("train", *SPLITS)}
    train = splits["train"]
    inputs = {key: value for key, value in train.items() if key != "user_id"}
    dataset = tf.data.Dataset.from_tensor_slices(inputs).shuffle(
        len(train["user_id"]), seed=settings.seed, reshuffle_each_iteration=True).batch(settings.batch_size)
    model_config = dataclasses.replace(config.Model(), architecture=variant.architecture,
                                       user_tower=variant.user_tower)
    custom_config = {
        "model": {**dataclasses.asdict(model_config), "tasks": variant_tasks(variant)},
        "text_encoder": dataclasses.asdict(config.TextEncoder(mode="off")),
        "training": dataclasses.asdict(config.Training(batch_size=settings.batch_size,
                                                       learning_rate=settings.learning_rate, seed=settings.seed)),
        "features": [dataclasses.asdict(feature) for feature in kuairand.declared_features()],
    }
    tft_output = tft.TFTransformOutput(os.path.join(work_dir, "transform"))
    # A sequence user tower reads each history video's tags and declared features from the catalogue.
    catalogue = list(input_contract.read_items(os.path.join(work_dir, "csv", input_contract.ITEMS_FILE), False,
                                               kuairand.declared_features()).values())
    model = trainer.compiled_model(tft_output, custom_config, dataset, catalogue)
    epochs, train_seconds = [], 0.0
    for _ in range(settings.max_epochs):
        started = time.perf_counter()
        model.fit(dataset, epochs=1, verbose=0)
        train_seconds += time.perf_counter() - started
        epochs.append({name: task_metrics(splits[name], predict(model, splits[name], variant.task_names))
                       for name in SPLITS})
    best = max(range(len(epochs)), key=lambda index: mean_auc(epochs[index]["validation"]))
    return {"name": variant.name, "kind": "mtrec", "architecture": variant.architecture, "esmm": variant.esmm,
            "epochs": best + 1, "validation": epochs[best]["validation"], "test": epochs[best]["test"],
            "per_epoch_validation": [mean_auc(epoch["validation"]) for epoch in epochs],
            "train_seconds": train_seconds,
            "examples_per_second": len(train["user_id"]) * settings.max_epochs / train_seconds}


def predict(model: Any, split: dict[str, np.ndarray], task_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Each task's predictions over a split's transformed columns, in batches."""
    keys = [key for key in split if key != "user_id"]
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in task_names}
    for start in range(0, len(split["user_id"]), EVAL_BATCH):
        predicted = model({key: split[key][start:start + EVAL_BATCH] for key in keys}, training=False)
        for name in task_names:
            outputs[name].append(np.asarray(predicted[name]))
    return {name: np.concatenate(values) for name, values in outputs.items()}


# === The run ===

def run(data_dir: str, work_dir: str, settings: Settings | None = None, log: Any = print) -> dict[str, Any]:
    """The whole benchmark (`settings`: the committed defaults unless given); returns the report (see `write`)."""
    settings = settings or Settings()
    protocol = prepare(data_dir, work_dir, settings, log)
    every_task = tuple(task.name for task in tasks())
    models = []
    for function, name in ((train_logistic, "logistic regression"), (train_lightgbm, "LightGBM")):
        log(f"training {name} per task")
        models.append(process.run_with_peak(function, work_dir, settings))
    for task in every_task:
        log(f"training mtrec single-task: {task}")
        models.append(process.run_with_peak(
            train_mtrec, work_dir, Variant(f"mtrec single-task {task}", (task,), "shared_bottom"), settings))
    multi = []
    for architecture in settings.architectures:
        log(f"training mtrec multi-task: {architecture}")
        multi.append(process.run_with_peak(
            train_mtrec, work_dir, Variant(f"mtrec {architecture}", every_task, architecture), settings))
    best_architecture = max(multi, key=lambda result: mean_auc(result["validation"]))["architecture"]
    log(f"training mtrec multi-task: {best_architecture} with ESMM for {', '.join(POST_CLICK_TASKS)}")
    multi.append(process.run_with_peak(train_mtrec, work_dir, Variant(f"mtrec {best_architecture} + ESMM", every_task,
                                                          best_architecture, esmm=True), settings))
    chosen = max(multi, key=lambda result: mean_auc(result["validation"]))
    models += multi
    report = {"dataset": "KuaiRand-Pure", "protocol": protocol, "machine": reports.machine(),
              "settings": dataclasses.asdict(settings), "models": models,
              "chosen_multitask": {"name": chosen["name"], "validation_mean_auc": mean_auc(chosen["validation"])}}
    report["targets"] = targets(report)
    return report


def run_user_behaviour(data_dir: str, work_dir: str, settings: Settings | None = None, log: Any = print
                       ) -> dict[str, Any]:
    """The sequence user tower against the mean tower, in one run: `settings.behaviour_architecture` with ESMM (the
    model the full run chose) trained with each tower, epochs chosen on the validation day; GAUC per task."""
    settings = settings or Settings()
    protocol = prepare(data_dir, work_dir, settings, log)
    every_task = tuple(task.name for task in tasks())
    models = []
    for tower in BEHAVIOUR_TOWERS:
        log(f"training mtrec {settings.behaviour_architecture} + ESMM, {tower} user tower")
        models.append(process.run_with_peak(train_mtrec, work_dir, Variant(
            f"mtrec {settings.behaviour_architecture} + ESMM, {tower} tower", every_task,
            settings.behaviour_architecture, esmm=True, user_tower=tower), settings))
    report = {"dataset": "KuaiRand-Pure", "title": "the transformer user tower against the mean tower",
              "protocol": protocol, "machine": reports.machine(), "settings": dataclasses.asdict(settings),
              "models": models}
    report["targets"] = behaviour_targets(report)
    return report


BEHAVIOUR_TOWERS = ("mean", "transformer")


def behaviour_targets(report: dict[str, Any]) -> dict[str, Any]:
    """The transformer tower's test GAUC against the mean tower's, per binary task and on average."""
    mean, transformer = report["models"]
    deltas = {task: transformer["test"][task]["gauc"] - mean["test"][task]["gauc"] for task in BINARY_TASKS}
    return {"transformer tower mean GAUC >= mean tower": {
        **{f"{task}_gauc_delta": delta for task, delta in deltas.items()},
        "mean_delta": float(np.mean(list(deltas.values()))), "met": float(np.mean(list(deltas.values()))) >= 0}}


def _single(models: list[dict[str, Any]], task: str) -> dict[str, Any]:
    return next(model for model in models if model["name"] == f"mtrec single-task {task}")


def targets(report: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with its figures: the chosen multi-task model against LightGBM (click, long view,
    like) and against the single-task models (every binary task), and a gain on two of the sparse tasks."""
    models = report["models"]
    chosen = next(model for model in models if model["name"] == report["chosen_multitask"]["name"])
    lightgbm = next(model for model in models if model["name"] == "LightGBM")
    result: dict[str, Any] = {}
    for task in LIGHTGBM_TARGET_TASKS:
        ours, theirs = chosen["test"][task]["auc"], lightgbm["test"][task]["auc"]
        result[f"multi-task AUC >= LightGBM ({task})"] = {"multitask": ours, "lightgbm": theirs, "met": ours >= theirs}
    gains = {}
    for task in BINARY_TASKS:
        ours, single = chosen["test"][task]["auc"], _single(models, task)["test"][task]["auc"]
        gains[task] = ours - single
        result[f"multi-task AUC >= single-task ({task})"] = {"multitask": ours, "single_task": single,
                                                             "met": ours >= single}
    sparse_gains = sum(gains[task] > 0 for task in SPARSE_TASKS)
    result["gain over single-task on >= 2 of like, follow, comment"] = {
        **{task: gains[task] for task in SPARSE_TASKS}, "tasks_with_gain": sparse_gains, "met": sparse_gains >= 2}
    return result


def markdown(report: dict[str, Any]) -> str:
    protocol = report["protocol"]
    examples = protocol["examples"]
    binary = list(BINARY_TASKS)
    title = report.get("title", "per-task ranking, mtrec against per-task baselines")
    lines = [f"# {report['dataset']}: {title}", "",
             f"Train {protocol['days']['train']} ({examples['train']} exposures), choose on "
             f"{protocol['days']['validation']} ({examples['validation']}), test {protocol['days']['test']} "
             f"({examples['test']}); {protocol['users']} users, {protocol['videos']} videos. Test-day figures; "
             f"every figure below comes from the same run ({report['machine']}).", "",
             "AUC / GAUC per task, and the watch ratio's RMSE:", "",
             "| model | " + " | ".join(binary) + f" | {regression_task()} RMSE | train ex/s | peak MB |",
             "|---" * (len(binary) + 4) + "|"]
    for model in report["models"]:
        cells = [f"{model['test'][task]['auc']:.4f} / {model['test'][task]['gauc']:.4f}" if task in model["test"]
                 else "" for task in binary]
        rmse = model["test"].get(regression_task(), {}).get("rmse")
        name = model["name"] + (f" ({model['epochs']} ep)" if "epochs" in model else "")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'' if rmse is None else f'{rmse:.4f}'} | "
                     f"{model['examples_per_second']:.0f} | {model['peak_memory_mb']:.0f} |")
    lines += ["", "Log loss per task (test days):", "",
              "| model | " + " | ".join(binary) + " |", "|---" * (len(binary) + 1) + "|"]
    for model in report["models"]:
        lines.append(f"| {model['name']} | " + " | ".join(
            f"{model['test'][task]['logloss']:.4f}" if task in model["test"] else "" for task in binary) + " |")
    if "chosen_multitask" in report:
        lines += ["", f"Chosen multi-task model (mean validation AUC of the binary tasks): "
                  f"{report['chosen_multitask']['name']} ({report['chosen_multitask']['validation_mean_auc']:.4f})."]
    lines += reports.target_lines(report["targets"])
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: str) -> None:
    reports.save_figure(path, len(BINARY_TASKS), (4 * len(BINARY_TASKS), 4.5), lambda axes: _draw(report, axes))


def _draw(report: dict[str, Any], axes: Any) -> None:
    for axis, task in zip(axes, BINARY_TASKS, strict=True):
        shown = [model for model in report["models"] if task in model["test"]]
        # One row per model; the single-task row of each plot is that task's own model.
        labels = ["mtrec single-task" if model["name"].startswith("mtrec single-task") else model["name"]
                  for model in shown]
        axis.barh(labels, [model["test"][task]["auc"] for model in shown],
                  color=["#55a868" if model["kind"] == "mtrec" else "#4c72b0" for model in shown])
        low = min(model["test"][task]["auc"] for model in shown)
        axis.set_xlim(max(0.5, low - 0.02), None)
        axis.set_title(f"{task}: test AUC")
        axis.invert_yaxis()
        if axis is not axes[0]:
            axis.set_yticklabels([])


def write(report: dict[str, Any], output_dir: str, name: str = "kuairand") -> list[str]:
    """Writes `name`.json, .md and .png to `output_dir`; returns the paths."""
    return reports.write(report, output_dir, name, markdown(report), lambda path: plot(report, path))
