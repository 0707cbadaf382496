"""`mtrec benchmark distillation`: a teacher, the student distilled from it and the same student trained on the
labels alone, on MovieLens 100K (the movielens benchmark's protocol) or on KuaiRand-Pure (the kuairand one's).

Models. Every model is mtrec, built by the Trainer's own `compiled_model` and exported by its own
`save_serving_model`; the two students differ only in the config's `distillation` section and the teacher columns
of their training data.
- MovieLens 100K: the teacher is the text model of `benchmark movielens` (the frozen MiniLM text tower, the
  default architecture and towers). The students drop the text tower (ids and genres), which is the bulk of the
  served model, and have embedding_dim 16 instead of 32, with the mean user tower.
- KuaiRand-Pure has no item text, so the teacher is a bigger model instead: embedding_dim 64 and the transformer
  user tower with target attention (benchmarks/user_behaviour.py's sequence model) on the model `benchmark
  kuairand` chose (MMoE with ESMM for like, follow and comment), plus a retrieval task over the clicks so that
  top-100 accuracy exists. The students are the same model with embedding_dim 16 and the mean user tower: the id
  tables (25k users, 7.6k videos) are most of the served model's weights and scale with the dimension, and the
  transformer tower and target attention are most of its serving work, so the dimension makes the size target
  and the tower makes the latency target meaningful. What no student sheds is each SavedModel's serving graph
  (five signatures, each with the Transform graph, and the vocabularies): several MB on KuaiRand whatever the
  dimension, a floor under the size ratio that the target measures too.
Teacher outputs. The teacher is exported first; `models.distillation.Teacher` then runs its `serving_default`
signature on the serialized raw tf.Examples of every training row (its own Transform graph reads them), and its
outputs (each ranking task's prediction, the user and item embeddings) become columns named
`features.teacher_output(name)` beside the student's transformed columns, so shuffling keeps them aligned. The
teacher's raw examples and the students' columns come from the same examples: movielens.examples (ML-100K) and
continuous.prepare's per-day files (KuaiRand; built as kuairand.prepare builds its examples).
Selection, never on the test split. Each model's epochs are chosen on a validation split with the criterion of its
benchmark (ML-100K: top-100 accuracy - RMSE, the movielens one, the validation split carved out of the training
split; KuaiRand: 04-30, top-100 accuracy + the mean AUC of the binary tasks); the distilled student also chooses
its soft weight and temperature there (`Settings.grid`), with hard weight 1. On ML-100K the model is then retrained
on the whole training split, so the distilled student's validation runs learn from a teacher trained on the
selection's training part only (trained apart, for the teacher's chosen epochs): a teacher that saw the validation
pairs would leak them into the student's choice. On KuaiRand selection and final model train on the same days.
Measured, on the test split: top-100 accuracy over the whole catalogue (KuaiRand: the clicked test exposures), the
regression task's RMSE (rating; watch ratio), AUC per binary task (KuaiRand: and GAUC); each SavedModel's size on
disk; `retrieve` (k=100) and `rank` (100 candidates) latency of single-user requests, in process (the loaded
signatures) and over HTTP (`mtrec serve`'s server), every path of every model timed in turn, request by request, so
machine noise hits them alike (benchmarks.serving). Targets (issue 17): the distilled student keeps at least 90%
of the teacher's top-100 lift over the label-only student, with at most a third of the teacher's size and p50s.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import os
import time
from typing import Any

import numpy as np

from benchmarks import continuous, kuairand, movielens, process, reports, serving
from components.example_gen import input_contract
from models import features

MOVIELENS, KUAIRAND = "movielens", "kuairand"
TEACHER, LABEL_ONLY, DISTILLED = "teacher", "student (labels only)", "student (distilled)"
ROLES = {TEACHER: "teacher", LABEL_ONLY: "label_only", DISTILLED: "distilled"}
KUAIRAND_TEACHER = {"embedding_dim": 64, "user_tower": "transformer", "target_attention": True}
STUDENT = {"embedding_dim": 16, "user_tower": "mean", "target_attention": False}
# (soft weight, temperature) pairs the distilled student chooses from on validation: the default, then each
# setting moved one way at a time.
GRID = ((1.0, 2.0), (0.5, 2.0), (2.0, 2.0), (1.0, 1.0), (1.0, 4.0))
MIN_RETAINED_LIFT = 0.9
MAX_RATIO = 1 / 3
# A teacher lift in top-100 accuracy below this is within the noise of one training run: the retained share is
# reported but the target counts as missed.
MIN_TEACHER_LIFT = 0.005
TEACHER_BATCH = 1024
PATHS = ("retrieve_in_process", "retrieve_http", "rank_in_process", "rank_http")


@dataclasses.dataclass
class Settings:
    """What a run trains. The defaults are the committed benchmark; tests shrink them."""

    movielens_epochs: int = 8
    kuairand_epochs: int = 4
    batch_size: int = 1024
    learning_rate: float = 0.003
    movielens_teacher: dict[str, Any] = dataclasses.field(default_factory=dict)  # model settings beside defaults
    kuairand_teacher: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(KUAIRAND_TEACHER))
    student: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(STUDENT))
    grid: tuple[tuple[float, float], ...] = GRID
    hard_weight: float = 1.0
    text_preset: str = "minilm"
    text_backbone: dict[str, int] | None = None  # a random small BERT instead of the preset's weights (tests)
    text_max_length: int = 32
    history_length: int = 20  # KuaiRand (ML-100K: the movielens benchmark's)
    requests: int = 200  # timed requests per latency path
    seed: int = 42

    def movielens(self) -> movielens.Settings:
        return movielens.Settings(max_epochs=self.movielens_epochs, batch_size=self.batch_size,
                                  learning_rate=self.learning_rate, text_preset=self.text_preset,
                                  text_backbone=self.text_backbone, text_max_length=self.text_max_length,
                                  seed=self.seed)

    def max_epochs(self, dataset: str) -> int:
        return self.movielens_epochs if dataset == MOVIELENS else self.kuairand_epochs


# === Data ===

@dataclasses.dataclass(frozen=True)
class Prepared:
    """A dataset ready to train on: `directory` holds transform/, catalogue.npz and each split's transformed
    columns (SPLIT.npz, with item_id, and user_id on KuaiRand); `raw` names the files of the serialized raw
    examples of the splits the students train on, row for row as in their .npz. `fit` is the split a selection
    run trains on; `train` the final models'."""

    dataset: str
    name: str
    report_name: str
    directory: str
    items_path: str
    users_path: str
    declared: tuple[features.Feature, ...]
    fit: str
    raw: dict[str, tuple[str, ...]]
    protocol: dict[str, Any]

    def items(self) -> list[input_contract.Item]:
        return list(input_contract.read_items(self.items_path, self.dataset == MOVIELENS,
                                              list(self.declared)).values())

    def users(self) -> list[input_contract.User]:
        return list(input_contract.read_users(self.users_path, list(self.declared)).values())


def is_kuairand(data_dir: str) -> bool:
    from pipeline.data import kuairand as kuairand_data

    return (os.path.isfile(os.path.join(data_dir, kuairand_data.VIDEOS_FILE))
            and bool(glob.glob(os.path.join(data_dir, kuairand_data.LOG_PATTERN))))


def prepare(data_dir: str, work_dir: str, settings: Settings, log: Any = print) -> Prepared:
    """KuaiRand-Pure when `data_dir` holds its files, otherwise what `benchmark movielens` reads (the GroupLens
    ML-100K files, or events.csv and items.csv in the CSV contract)."""
    if is_kuairand(data_dir):
        return prepare_kuairand(data_dir, work_dir, settings, log)
    from pipeline.data import kuairand as kuairand_data

    try:
        data = movielens.load(data_dir, work_dir)
    except input_contract.InputError as error:
        raise input_contract.InputError(f"{error}; nor the KuaiRand-Pure files ({kuairand_data.VIDEOS_FILE} and "
                                        f"{kuairand_data.LOG_PATTERN})") from None
    return prepare_movielens(data, work_dir, settings, log)


def prepare_movielens(data: movielens.Dataset, work_dir: str, settings: Settings, log: Any = print) -> Prepared:
    """The movielens protocol's splits (validation carved out of the training split), transformed by
    movielens.prepare, and the raw examples of the two training splits as TFRecord files."""
    import tensorflow as tf

    events, items = data.events, data.items
    train, test = movielens.protocol_split(len(events))
    fit, validation = movielens.holdout(train, movielens.VALIDATION_FRACTION, settings.seed)
    directory = os.path.join(work_dir, "protocol")
    log(f"transform: {len(train)} train ({len(fit)} fit, {len(validation)} validation), {len(test)} test events")
    movielens.prepare(events, items, train, {"fit": fit, "validation": validation, "test": test},
                      settings.movielens(), directory)
    raw = {}
    for name, rows in (("fit", fit), ("train", train)):
        raw[name] = (os.path.join(directory, f"{name}.tfrecord"),)
        with tf.io.TFRecordWriter(raw[name][0]) as writer:
            for example in movielens.examples(events, items, rows, train):
                writer.write(example.SerializeToString())
    protocol = {"events": len(events), "train": len(train), "test": len(test), "seed": movielens.PROTOCOL_SEED,
                "validation_from_train": len(validation), "top_k": movielens.TOP_K,
                "selection": "top-100 accuracy - RMSE on the validation split"}
    return Prepared(MOVIELENS, data.name, data.report_name, directory, data.items_path,
                    os.path.join(os.path.dirname(data.items_path), input_contract.USERS_FILE), (), "fit", raw, protocol)


def kuairand_days(days: list[str]) -> dict[str, list[str]]:
    """The kuairand protocol's split of `days`: train up to 04-29, validation 04-30, test after."""
    return {"train": [day for day in days if day <= kuairand.TRAIN_LAST_DAY],
            "validation": [day for day in days if day == kuairand.VALIDATION_DAY],
            "test": [day for day in days if day > kuairand.VALIDATION_DAY]}


def prepare_kuairand(data_dir: str, work_dir: str, settings: Settings, log: Any = print) -> Prepared:
    """Each day's raw examples (continuous.prepare: ExampleGen's functions, each exposure's history over the whole
    log, as kuairand.prepare builds them), split by the kuairand protocol's days; Transform analyses the training
    days, with KuaiRand's tasks and retrieval over the clicks."""
    from benchmarks import in_process
    from models import trainer
    from pipeline import config
    from pipeline.data import kuairand as kuairand_data

    # The needed days of this one-day "window" are the validation day and the first test day.
    days = continuous.prepare(data_dir, work_dir, continuous.Settings(
        window_days=1, first_end_day=kuairand.VALIDATION_DAY, last_test_day=continuous._day(kuairand.VALIDATION_DAY, 1),
        history_length=settings.history_length), log)
    split_days = kuairand_days(sorted(days["examples_per_day"]))
    declared = kuairand_data.declared_features()
    tasks = config.kuairand_tasks()
    transform_config = {"text_preset": "minilm", "text_max_length": 3, "history_length": settings.history_length,
                        "max_categories": 4, "tasks": [dataclasses.asdict(task) for task in tasks],
                        "features": [dataclasses.asdict(feature) for feature in declared]}
    directory = os.path.join(work_dir, "protocol")
    examples = {name: continuous._examples(work_dir, found) for name, found in split_days.items()}
    log(f"transform: {', '.join(f'{name} {len(found)}' for name, found in examples.items())} examples")
    tft_output = in_process.analyze(examples["train"], transform_config, os.path.join(directory, "transform"),
                                    declared, tasks)
    clicked = {}
    for name, found in examples.items():
        columns = continuous._columns(tft_output, found)
        columns["item_id"] = np.array([e.features.feature[features.ITEM_ID].bytes_list.value[0].decode()
                                       for e in found])
        np.savez(os.path.join(directory, f"{name}.npz"), **columns)
        clicked[name] = int((columns[features.transformed_label(features.RETRIEVAL_TASK)] > 0.5).sum())
    if not clicked["validation"] or not clicked["test"]:
        raise input_contract.InputError(f"{data_dir}: top-100 accuracy needs clicked exposures on the validation day "
                                        f"and the test days; found {clicked['validation']} and {clicked['test']}")
    items_path = os.path.join(work_dir, "csv", input_contract.ITEMS_FILE)
    catalogue = list(input_contract.read_items(items_path, False, declared).values())
    transformed = trainer.transform_catalogue(tft_output, catalogue, declared)
    np.savez(os.path.join(directory, "catalogue.npz"), item_id=np.array([item.item_id for item in catalogue]),
             **{key: np.asarray(value) for key, value in transformed.items()})
    protocol = {"days": {name: f"{found[0]}..{found[-1]}" if found else "" for name, found in split_days.items()},
                "examples": {name: len(found) for name, found in examples.items()},
                "top_100_pairs": clicked["test"],
                "users": days["users"], "videos": days["videos"],
                "selection": "top-100 accuracy + mean AUC of the binary tasks on the validation day"}
    raw = {"train": tuple(os.path.join(continuous._days_dir(work_dir), f"{day}.tfrecord")
                          for day in split_days["train"])}
    return Prepared(KUAIRAND, "KuaiRand-Pure", "kuairand", directory, items_path,
                    os.path.join(work_dir, "csv", input_contract.USERS_FILE), tuple(declared), "train", raw, protocol)


# === Models ===

def model_config(prepared: Prepared, options: dict[str, Any], text: bool, settings: Settings,
                 distillation: tuple[float, float] | None = None) -> dict[str, Any]:
    """The Trainer custom_config of one model: its benchmark's (movielens.mtrec_config; continuous.custom_config,
    the chosen KuaiRand model, with retrieval added) with `options` replacing model settings, the text tower
    frozen or off, and with `distillation` (soft weight, temperature) the config's distillation section."""
    from pipeline import config

    if prepared.dataset == MOVIELENS:
        job = movielens.Job("", "mtrec", prepared.directory, "", (), 0, prepared.items_path,
                            config.Model().architecture, "frozen" if text else "off", model_options=options)
        result = movielens.mtrec_config(job, settings.movielens())
        result["model"]["use_categories"] = True  # the students read the genres too
    else:
        result = continuous.custom_config(continuous.Settings(batch_size=settings.batch_size,
                                                              learning_rate=settings.learning_rate,
                                                              history_length=settings.history_length,
                                                              seed=settings.seed))
        retrieval = [dataclasses.asdict(task) for task in config.kuairand_tasks() if task.type == "retrieval"]
        result["model"] = {**result["model"], **options, "tasks": [*retrieval, *result["model"]["tasks"]]}
    if distillation is not None:
        soft_weight, temperature = distillation
        # No teacher path: the student's training columns already hold the teacher's outputs.
        result["distillation"] = {"hard_weight": settings.hard_weight, "soft_weight": soft_weight,
                                  "temperature": temperature}
    return result


@dataclasses.dataclass
class Job:
    """One model trained in its own process: `config` on the `train` split (an .npz of the prepared directory),
    measured on `evaluate_on` after every epoch (`per_epoch`: selection) or after the last; with `export_dir`, its
    serving SavedModel is written there and its size measured."""

    name: str
    prepared: Prepared
    config: dict[str, Any]
    train: str
    evaluate_on: str
    epochs: int
    per_epoch: bool = False
    export_dir: str | None = None


def train_job(job: Job, settings: Settings) -> dict[str, Any]:
    """Runs in a fresh process: trains `job`, returns its metrics, the last epoch's losses, its times and the size
    of its export."""
    import keras
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the Transform graph's WordPiece ops)
    import tensorflow_transform as tft

    from models import export, trainer
    from pipeline import run_summary

    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    keras.utils.set_random_seed(settings.seed)
    prepared = job.prepared
    catalogue = movielens._load(prepared.directory, "catalogue")
    train = {key: value for key, value in movielens._load(prepared.directory, job.train).items() if key != "user_id"}
    split = movielens._load(prepared.directory, job.evaluate_on)
    items = prepared.items()
    started = time.perf_counter()
    tft_output = tft.TFTransformOutput(os.path.join(prepared.directory, "transform"))
    dataset = movielens._fit_dataset(train, settings.batch_size, settings.seed, reshuffle=True)
    model = trainer.compiled_model(tft_output, job.config, dataset, items)
    setup_seconds = time.perf_counter() - started
    measured, losses, train_seconds = [], {}, 0.0
    for epoch in range(1, job.epochs + 1):
        started = time.perf_counter()
        history = model.fit(dataset, epochs=1, verbose=0).history
        train_seconds += time.perf_counter() - started
        losses = {key: float(values[-1]) for key, values in history.items()}
        if job.per_epoch or epoch == job.epochs:
            measured.append(metrics(prepared.dataset, model, split, catalogue))
    result = {"name": job.name, "epochs": measured if job.per_epoch else job.epochs, "metrics": measured[-1],
              "final_epoch_losses": losses, "train_seconds": train_seconds, "setup_seconds": setup_seconds,
              "examples_per_second": len(train["item_id"]) * job.epochs / train_seconds}
    if job.export_dir:
        export.save_serving_model(model, tft_output, items, job.export_dir, prepared.users(), list(prepared.declared))
        result["size_bytes"] = run_summary.directory_bytes(job.export_dir)
    return result


def run_job(job: Job, settings: Settings) -> dict[str, Any]:
    """`train_job` in a new process, so each model's peak memory is its own."""
    return process.run_with_peak(train_job, job, settings)


# === Metrics ===

def metrics(dataset: str, model: Any, split: dict[str, np.ndarray], catalogue: dict[str, np.ndarray]
            ) -> dict[str, Any]:
    """Test or validation figures of `model` on a transformed split: top-100 accuracy (and Recall@10, NDCG@10)
    over the whole catalogue on cosine scores, the regression task's RMSE on its own scale, and per binary task
    its AUC (KuaiRand: GAUC and log loss too, kuairand.task_metrics)."""
    catalogue_rows = {item: row for row, item in enumerate(catalogue["item_id"].astype(str))}
    if dataset == MOVIELENS:
        found = movielens.evaluate(model, split, catalogue, catalogue_rows, cosine=True)
        return {**found, "auc": {features.CLICK_TASK: found.pop("click_auc")}}
    names = tuple(task.name for task in kuairand.tasks())
    predicted = kuairand.predict(model, {key: value for key, value in split.items() if key != "item_id"},
                                 (*names, features.USER_EMBEDDING))
    users = predicted.pop(features.USER_EMBEDDING)
    items = np.concatenate([np.asarray(model.item_tower(
        {key: value[start:start + kuairand.EVAL_BATCH] for key, value in catalogue.items() if key != "item_id"}))
        for start in range(0, len(catalogue["item_id"]), kuairand.EVAL_BATCH)])
    clicked = split[features.transformed_label(features.RETRIEVAL_TASK)] > 0.5
    true_rows = np.array([catalogue_rows[item] for item in split["item_id"][clicked].astype(str)])
    result = movielens.ranking_metrics(movielens._normalise(users[clicked]), movielens._normalise(items), true_rows)
    by_task = kuairand.task_metrics(split, predicted)
    result["rmse"] = by_task.pop(kuairand.regression_task())["rmse"]
    for key in ("auc", "gauc", "logloss"):
        result[key] = {task: figures[key] for task, figures in by_task.items()}
    return result


def selection_score(dataset: str, found: dict[str, Any]) -> float:
    """The validation criterion: movielens.selection_score on ML-100K; top-100 accuracy plus the mean AUC of the
    binary tasks (kuairand's criterion) on KuaiRand."""
    if dataset == MOVIELENS:
        return movielens.selection_score(found)
    return found["top_100_accuracy"] + float(np.mean(list(found["auc"].values())))


def best_epoch(dataset: str, result: dict[str, Any]) -> tuple[int, float]:
    """(epochs, score) of the best validation score of a per-epoch result."""
    scores = [selection_score(dataset, found) for found in result["epochs"]]
    best = int(np.argmax(scores))
    return best + 1, scores[best]


# === Teacher outputs ===

def add_teacher_outputs(prepared: Prepared, teachers: dict[str, str]) -> list[dict[str, Any]]:
    """Runs in a fresh process: for each split of `teachers` (split -> the teacher's SavedModel directory), the
    teacher's outputs for every row, from the split's raw examples, written with its columns as SPLIT_distilled.npz.
    The raw examples' item ids must be the columns' own, row by row."""
    import tensorflow as tf

    from models.distillation import Teacher

    spec = {features.ITEM_ID: tf.io.FixedLenFeature([], tf.string)}
    result = []
    for split, teacher_dir in teachers.items():
        teacher = Teacher(teacher_dir)
        columns = movielens._load(prepared.directory, split)
        outputs: dict[str, list[np.ndarray]] = collections.defaultdict(list)
        item_ids = []
        started = time.perf_counter()
        for batch in tf.data.TFRecordDataset(list(prepared.raw[split])).batch(TEACHER_BATCH):
            item_ids.append(tf.io.parse_example(batch, spec)[features.ITEM_ID].numpy().astype(str))
            for name, value in teacher(batch).items():
                outputs[name].append(np.asarray(value))
        seconds = time.perf_counter() - started
        if not np.array_equal(np.concatenate(item_ids), columns["item_id"].astype(str)):
            raise RuntimeError(f"the raw examples of {split} are not its transformed rows, row by row")
        teacher_columns = {name: np.concatenate(values) for name, values in outputs.items()}
        np.savez(os.path.join(prepared.directory, f"{split}_distilled.npz"), **columns, **teacher_columns)
        result.append({"split": split, "rows": len(columns["item_id"]), "columns": sorted(teacher_columns),
                       "teacher": teacher_dir, "seconds": seconds})
    return result


# === Latency ===

def request_inputs(specs: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """One request to a signature with input `specs` as JSON-ready lists: `values` by input name, every other input
    (a declared context feature) missing, or 0 for an integer one (the timestamp)."""
    inputs = {}
    for name, spec in specs.items():
        if name in values:
            inputs[name] = values[name]
        else:
            missing = "" if spec.dtype.name == "string" else float("nan") if spec.dtype.is_floating else 0
            inputs[name] = [[missing]] if spec.shape.rank == 2 else [missing]
    return inputs


def measure_latency(prepared: Prepared, model_dirs: dict[str, str], requests: int) -> dict[str, Any]:
    """Runs in a fresh process: `retrieve` and `rank` p50s of each model (`model_dirs`: name -> directory of
    numeric versions), in process and over HTTP through `mtrec serve`'s server, all timed in turn."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from serving import rest
    from serving.server import ModelServer

    first = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset([prepared.raw[prepared.fit][0]]))).numpy())
    user = {features.USER_ID: [first.features.feature[features.USER_ID].bytes_list.value[0].decode()],
            features.HISTORY: [[item.decode() for item in first.features.feature[features.HISTORY].bytes_list.value]
                               or [""]]}
    catalogue = movielens._load(prepared.directory, "catalogue")["item_id"].astype(str)
    values = {"retrieve": {**user, features.K: [serving.K], features.EXCLUDE_HISTORY: [True]},
              "rank": {**user, features.ITEM_IDS: [catalogue[:serving.CANDIDATES].tolist()]}}
    calls, servers, loaded = {}, [], []
    try:
        for name, directory in model_dirs.items():
            model = tf.saved_model.load(os.path.join(directory, "1"))
            loaded.append(model)
            server = ModelServer(directory, port=0).start()
            servers.append(server)
            for signature_name in ("retrieve", "rank"):
                signature = model.signatures[signature_name]
                specs = rest.signature_specs(signature)[0]
                inputs = request_inputs(specs, values[signature_name])
                tensors = {key: tf.constant(value, specs[key].dtype) for key, value in inputs.items()}
                calls[(name, f"{signature_name}_in_process")] = lambda s=signature, t=tensors: s(**t)
                calls[(name, f"{signature_name}_http")] = serving.http_predict(
                    server.port, {"signature_name": signature_name, "inputs": inputs})
        seconds = serving.interleaved(calls, requests)
    finally:
        for server in servers:
            server.stop()
    result: dict[str, Any] = {name: {} for name in model_dirs}
    for (name, path), values_seconds in seconds.items():
        result[name][path] = serving.summary(values_seconds)
    return result


# === The run ===

def run(data_dir: str, work_dir: str, settings: Settings | None = None, log: Any = print) -> dict[str, Any]:
    """The whole benchmark on `data_dir` (see `prepare`); returns the report (see `write`)."""
    settings = settings or Settings()
    prepared = prepare(data_dir, work_dir, settings, log)
    return run_prepared(prepared, work_dir, settings, log)


def _select(prepared: Prepared, name: str, config: dict[str, Any], fit: str, settings: Settings,
            log: Any) -> dict[str, Any]:
    """A per-epoch run on the fit split, measured on validation: the chosen epochs, their score and every epoch's
    figures."""
    log(f"select: {name}")
    result = run_job(Job(name, prepared, config, fit, "validation", settings.max_epochs(prepared.dataset),
                         per_epoch=True), settings)
    epochs, score = best_epoch(prepared.dataset, result)
    log("  validation top-100 per epoch: " + ", ".join(f"{e['top_100_accuracy']:.3f}" for e in result["epochs"])
        + f"; chosen {epochs} epochs (score {score:.4f})")
    return {"epochs": epochs, "validation_score": score, "validation_per_epoch": result["epochs"]}


def _final(prepared: Prepared, name: str, config: dict[str, Any], train: str, epochs: int, export_dir: str,
           settings: Settings, log: Any) -> dict[str, Any]:
    """The model trained for `epochs` on `train`, measured on the test split and exported to `export_dir`."""
    log(f"train: {name} ({epochs} epochs), export")
    result = run_job(Job(name, prepared, config, train, "test", epochs, export_dir=export_dir), settings)
    found = result["metrics"]
    log(f"  {name}: top-100 {found['top_100_accuracy']:.3f}, RMSE {found['rmse']:.3f}, "
        f"{result['size_bytes'] / 1e6:.1f} MB")
    return result


def _teacher(prepared: Prepared, export_dir: str, models_dir: str, settings: Settings, log: Any
             ) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(selection, final result, outputs) of the teacher: chosen, trained and exported, and its outputs added to
    the students' training splits; where selection trains on a split of its own (ML-100K), that split's outputs
    come from a teacher trained on it alone."""
    options = settings.movielens_teacher if prepared.dataset == MOVIELENS else settings.kuairand_teacher
    config = model_config(prepared, options, prepared.dataset == MOVIELENS, settings)
    selection = _select(prepared, TEACHER, config, prepared.fit, settings, log)
    final = _final(prepared, TEACHER, config, "train", selection["epochs"], export_dir, settings, log)
    teachers = {"train": export_dir}
    if prepared.fit != "train":
        log("train: the teacher on the fit split, the distilled student's teacher during selection")
        teachers[prepared.fit] = os.path.join(models_dir, "teacher-fit", "1")
        fitted = run_job(Job("teacher (fit split)", prepared, config, prepared.fit, "validation",
                             selection["epochs"], export_dir=teachers[prepared.fit]), settings)
        selection["fit_split_teacher_validation"] = fitted["metrics"]
    log(f"teacher outputs: {', '.join(teachers)}")
    return selection, final, process.run_isolated(add_teacher_outputs, prepared, teachers).result


def _distilled(prepared: Prepared, export_dir: str, settings: Settings, log: Any
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(selection, final result) of the distilled student: its epochs, soft weight and temperature chosen
    together on validation."""
    candidates = []
    for soft_weight, temperature in settings.grid:
        config = model_config(prepared, settings.student, False, settings, (soft_weight, temperature))
        chosen = _select(prepared, f"{DISTILLED}, soft weight {soft_weight}, temperature {temperature}", config,
                         f"{prepared.fit}_distilled", settings, log)
        candidates.append(({"soft_weight": soft_weight, "temperature": temperature, **chosen}, config))
    best, config = max(candidates, key=lambda candidate: candidate[0]["validation_score"])
    selection = {**{key: best[key] for key in ("soft_weight", "temperature", "epochs", "validation_score")},
                 "candidates": [candidate for candidate, _ in candidates]}
    return selection, _final(prepared, DISTILLED, config, "train_distilled", best["epochs"], export_dir, settings,
                             log)


def run_prepared(prepared: Prepared, work_dir: str, settings: Settings, log: Any = print) -> dict[str, Any]:
    """Teacher, label-only student, distilled student on a prepared dataset; their latencies; the report."""
    models_dir = os.path.join(work_dir, "models")
    roots = {name: os.path.join(models_dir, ROLES[name]) for name in (TEACHER, LABEL_ONLY, DISTILLED)}
    selection, finals = {}, {}
    selection[TEACHER], finals[TEACHER], teacher_outputs = _teacher(
        prepared, os.path.join(roots[TEACHER], "1"), models_dir, settings, log)
    student = model_config(prepared, settings.student, False, settings)
    selection[LABEL_ONLY] = _select(prepared, LABEL_ONLY, student, prepared.fit, settings, log)
    finals[LABEL_ONLY] = _final(prepared, LABEL_ONLY, student, "train", selection[LABEL_ONLY]["epochs"],
                                os.path.join(roots[LABEL_ONLY], "1"), settings, log)
    selection[DISTILLED], finals[DISTILLED] = _distilled(prepared, os.path.join(roots[DISTILLED], "1"), settings,
                                                         log)
    log(f"latency: retrieve and rank, {settings.requests} requests per path and model, in process and over HTTP")
    latency = process.run_isolated(measure_latency, prepared, roots, settings.requests).result
    models = [row(name, finals[name], latency[name], selection[name]) for name in (TEACHER, LABEL_ONLY, DISTILLED)]
    report = {"benchmark": "distillation", "dataset": prepared.name, "report_name": prepared.report_name,
              "machine": reports.machine(), "protocol": prepared.protocol, "settings": dataclasses.asdict(settings),
              "models": models, "selection": selection, "teacher_outputs": teacher_outputs,
              "ratios": ratios(models)}
    report["targets"] = targets(report)
    return report


def row(name: str, result: dict[str, Any], latency: dict[str, dict[str, float]], chosen: dict[str, Any]
        ) -> dict[str, Any]:
    """A model's line of the report: its test figures, size, latencies and training cost."""
    return {"name": name, "role": ROLES[name], **result["metrics"], "epochs": result["epochs"],
            **{key: chosen[key] for key in ("soft_weight", "temperature") if key in chosen},
            "size_bytes": result["size_bytes"], "latency": latency,
            **{key: result[key] for key in ("train_seconds", "setup_seconds", "examples_per_second",
                                            "peak_memory_mb", "final_epoch_losses")}}


def ratios(models: list[dict[str, Any]]) -> dict[str, float]:
    """The distilled student's size and p50s over the teacher's."""
    by_role = {model["role"]: model for model in models}
    teacher, student = by_role["teacher"], by_role["distilled"]
    result = {"size": student["size_bytes"] / teacher["size_bytes"]}
    for path in PATHS:
        result[f"{path}_p50"] = student["latency"][path]["p50_ms"] / teacher["latency"][path]["p50_ms"]
    return result


def targets(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Issue 17's targets, each with its value and whether it is met: the retained share of the teacher's top-100
    lift over the label-only student (missed, with the reason, when the teacher's lift is under
    MIN_TEACHER_LIFT), the size ratio and the p50 ratios."""
    by_role = {model["role"]: model for model in report["models"]}
    teacher, label_only, distilled = (by_role[role]["top_100_accuracy"]
                                      for role in ("teacher", "label_only", "distilled"))
    lift = teacher - label_only
    retained = (distilled - label_only) / lift if lift else None
    target: dict[str, Any] = {"value": retained, "goal": f">= {MIN_RETAINED_LIFT}", "teacher": teacher,
                              "label_only": label_only, "distilled": distilled, "teacher_lift": lift}
    if lift < MIN_TEACHER_LIFT:
        target["met"] = False
        target["reason"] = (f"the teacher's top-100 lift over the label-only student ({lift:.4f}) is under "
                            f"{MIN_TEACHER_LIFT}: there is no lift to keep, so the share is noise")
    else:
        target["met"] = retained >= MIN_RETAINED_LIFT
    result = {"retained_top_100_lift": target}
    names = {"size": "size_ratio", **{f"{path}_p50": f"{path.split('_', 1)[0]}_p50_ratio_{path.split('_', 1)[1]}"
                                      for path in PATHS}}
    for key, name in names.items():
        value = report["ratios"][key]
        result[name] = {"value": value, "goal": "<= 1/3", "met": value <= MAX_RATIO}
    return result


# === The report ===

def markdown(report: dict[str, Any]) -> str:
    models = report["models"]
    binary = list(models[0]["auc"])
    gauc = "gauc" in models[0]
    rmse = "watch ratio RMSE" if gauc else "rating RMSE"
    protocol = report["protocol"]
    lines = [f"# {report['dataset']}: knowledge distillation, teacher against students", "",
             f"Protocol: {_protocol_line(protocol)}. Test-split figures; epochs chosen on validation "
             f"({protocol['selection']}). Latency: p50 ms of single-user requests, `retrieve` k={serving.K} and "
             f"`rank` {serving.CANDIDATES} candidates, in process / over HTTP (`mtrec serve`), every path timed in "
             f"turn. Every figure below comes from the same run ({report['machine']}).", "",
             f"| model | top-100 | {rmse} | " + " | ".join(
                 f"{task} AUC{' / GAUC' if gauc else ''}" for task in binary)
             + " | size MB | retrieve p50 ms (in process / HTTP) | rank p50 ms (in process / HTTP) | train s "
             "| peak MB |",
             "|---" * (len(binary) + 8) + "|"]
    for model in models:
        aucs = [f"{model['auc'][task]:.4f}" + (f" / {model['gauc'][task]:.4f}" if gauc else "") for task in binary]
        latency = model["latency"]
        name = model["name"] + f" ({model['epochs']} ep" + (
            f", soft weight {model['soft_weight']}, T {model['temperature']})" if "soft_weight" in model else ")")
        lines.append(f"| {name} | {model['top_100_accuracy']:.4f} | {model['rmse']:.4f} | " + " | ".join(aucs)
                     + f" | {model['size_bytes'] / 1e6:.2f} | {latency['retrieve_in_process']['p50_ms']:.2f} / "
                     f"{latency['retrieve_http']['p50_ms']:.2f} | {latency['rank_in_process']['p50_ms']:.2f} / "
                     f"{latency['rank_http']['p50_ms']:.2f} | {model['train_seconds']:.0f} | "
                     f"{model['peak_memory_mb']:.0f} |")
    lines += ["", "The distilled student against the teacher: " + ", ".join(
        f"{key.replace('_', ' ')} {value:.3f}x" for key, value in report["ratios"].items()) + "."]
    candidates = report["selection"][DISTILLED]["candidates"]
    lines += ["", "The distilled student's soft weight and temperature (hard weight "
              f"{report['settings']['hard_weight']}), chosen on validation: " + ", ".join(
                  f"{c['soft_weight']} / {c['temperature']}: {c['validation_score']:.4f} ({c['epochs']} ep)"
                  for c in candidates) + "."]
    lines += reports.target_lines(report["targets"])
    return "\n".join(lines) + "\n"


def _protocol_line(protocol: dict[str, Any]) -> str:
    if "days" in protocol:
        days, examples = protocol["days"], protocol["examples"]
        return (f"train {days['train']} ({examples['train']} exposures), validation {days['validation']} "
                f"({examples['validation']}), test {days['test']} ({examples['test']}; top-100 accuracy over "
                f"{protocol['top_100_pairs']} clicked exposures); {protocol['users']} users, {protocol['videos']} "
                "videos")
    return (f"{protocol['train']} train ({protocol['validation_from_train']} of them validation) / "
            f"{protocol['test']} test ratings (the tutorial's shuffle, seed {protocol['seed']}); top-100 accuracy "
            "over the whole catalogue")


def write(report: dict[str, Any], output_dir: str) -> list[str]:
    """Writes distillation-NAME.json and .md to `output_dir` (NAME: movielens-100k, kuairand); returns the paths."""
    return reports.write(report, output_dir, f"distillation-{report['report_name']}", markdown(report))
