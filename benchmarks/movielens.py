"""`mtrec benchmark movielens`: mtrec against the TFRS multitask tutorial on MovieLens 100K, on its protocol; or the
same protocol on any dataset in mtrec's CSV contract (events.csv and items.csv).

Protocol (../shared/anchors.md): all ratings, `shuffle(100_000, seed=42, reshuffle_each_iteration=False)`
after `tf.random.set_seed(42)`, first 80% train, last 20% test; top-100 accuracy = share of test pairs whose
item is among the user's 100 best-scored items of the whole catalogue; RMSE of the rating head.

In one run it trains, each in its own process (so peak memory is the model's own):
- the TFRS tutorial model in its three loss weightings (rating-only, retrieval-only, joint);
- mtrec with ids only and mtrec with the frozen text tower, each with the architecture (shared-bottom, MMoE,
  PLE) and epoch count chosen on a validation split carved out of the training split (never the test split),
  then retrained on the whole training split;
- a cold-start split: 10% of the items lose all their training events; ids-only and text models are compared
  on those items' Recall@100;
- a time-split cold start: items whose first event falls in the last 10% of the timeline (in events) are new;
  the models train on every event before the cutoff and are measured on the new items' events after it;
- a cold-user split: 10% of the users lose all their training events, so they come with no history and an id the
  model never trained; the chosen ids-only model with and without the user features (u.user's age, gender,
  occupation and zip prefix) is compared on those users' test pairs (Recall@100 and RMSE).
A popularity / global-mean row is the trivial baseline. Features come from the pipeline's own ExampleGen
functions and Transform; history holds only training events (strictly earlier), so no test pair leaks in.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import os
import time
from typing import Any

import numpy as np

from benchmarks import reports
from components.example_gen import executor, input_contract
from models import features
from models.metrics import auc

TOP_K = 100
CUTOFF_K = 10
PROTOCOL_SEED = 42
TRAIN_FRACTION = 0.8
VALIDATION_FRACTION = 0.1
COLD_ITEM_FRACTION = 0.1
COLD_USER_FRACTION = 0.1
NEW_ITEM_FRACTION = 0.1  # the time split: the last 10% of the timeline's events
HISTORY_LENGTH = 20
EVAL_BATCH = 2048
ARCHITECTURES = ("shared_bottom", "mmoe", "ple")
# The tutorial's three loss weightings: (name, rating weight, retrieval weight).
TFRS_WEIGHTINGS = (("tfrs rating-only", 1.0, 0.0), ("tfrs retrieval-only", 0.0, 1.0), ("tfrs joint", 1.0, 1.0))
TFRS_TRAINING = {"batch_size": 8192, "epochs": 3, "learning_rate": 0.1}
# The benchmark's tasks: every rating is a retrieval positive (as in the protocol), click = rating >= 4.
TASKS = [{"name": "retrieval", "type": "retrieval", "label": None, "weight": 1.0},
         {"name": "click", "type": "binary", "label": "clicked", "weight": 1.0},
         {"name": "rating", "type": "regression", "label": "rating", "weight": 1.0}]
# ML-100K: the text (frozen) model's figures in the results committed before item id dropout (issue 14's
# targets are set against them).
BEFORE_ID_DROPOUT = {"cold_recall_at_100": 0.116, "top_100_accuracy": 0.583, "rmse": 0.901}


@dataclasses.dataclass
class Settings:
    """What a run trains. The defaults are the committed benchmark; tests shrink them."""

    max_epochs: int = 8
    batch_size: int = 1024
    learning_rate: float = 0.003
    architectures: tuple[str, ...] = ARCHITECTURES
    text_preset: str = "minilm"
    text_backbone: dict[str, int] | None = None  # a random small BERT instead of the preset's weights (tests)
    text_max_length: int = 32
    tfrs_weightings: tuple[tuple[str, float, float], ...] = TFRS_WEIGHTINGS
    seed: int = PROTOCOL_SEED
    user_behaviour: bool = True  # the sequence tower and target attention comparison (benchmarks.user_behaviour)
    # Fine-tuning's throughput: the batch size and the steps timed. Per event, 256 events (5,376 texts with the
    # history) took over 20 GB and were killed on a 23 GB machine.
    throughput_batch_size: int = 64
    throughput_steps: int = 3


# === Data and splits ===

def protocol_split(num_events: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices exactly as the tutorial's shuffle and take/skip produce them."""
    import tensorflow as tf

    tf.random.set_seed(PROTOCOL_SEED)
    order = np.fromiter(tf.data.Dataset.range(num_events).shuffle(
        num_events, seed=PROTOCOL_SEED, reshuffle_each_iteration=False).as_numpy_iterator(), np.int64)
    cut = int(num_events * TRAIN_FRACTION)
    return order[:cut], order[cut:]


def holdout(indices: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random (rest, held-out) partition of `indices`."""
    chosen = np.random.default_rng(seed).random(len(indices)) < fraction
    return indices[~chosen], indices[chosen]


def cold_split(events: list[input_contract.Event], train: np.ndarray, test: np.ndarray, seed: int,
               key: str = "item_id", fraction: float = COLD_ITEM_FRACTION) -> tuple[np.ndarray, np.ndarray, set[str]]:
    """Removes every training event of a random `fraction` of the values of the events' `key` (items, or users);
    returns (train, their test pairs, the cold values)."""
    values = sorted({getattr(event, key) for event in events})
    rng = np.random.default_rng(seed)
    cold = set(rng.choice(values, size=max(1, round(len(values) * fraction)), replace=False))
    keep = np.array([getattr(events[i], key) not in cold for i in train])
    cold_test = np.array([i for i in test if getattr(events[i], key) in cold], np.int64)
    return train[keep], cold_test, cold


def time_split(events: list[input_contract.Event], fraction: float = NEW_ITEM_FRACTION
               ) -> tuple[np.ndarray, np.ndarray, set[str]]:
    """The time-split cold start: the cutoff is the timestamp where the last `fraction` of the events (in time
    order) begins; items whose first event is at or after it are new. Returns (every event before the cutoff, the
    new items' events from it on, the new items)."""
    timestamps = np.array([event.timestamp for event in events])
    cutoff = np.sort(timestamps)[min(len(events) - 1, int(len(events) * (1.0 - fraction)))]
    first: dict[str, int] = {}
    for event in events:
        first[event.item_id] = min(event.timestamp, first.get(event.item_id, event.timestamp))
    new = {item for item, timestamp in first.items() if timestamp >= cutoff}
    train = np.flatnonzero(timestamps < cutoff)
    test = np.array([i for i in np.flatnonzero(timestamps >= cutoff) if events[i].item_id in new], np.int64)
    return train, test, new


def cold_user_split(events: list[input_contract.Event], train: np.ndarray, test: np.ndarray, seed: int
                    ) -> tuple[np.ndarray, np.ndarray, set[str]]:
    """Removes every training event of a random 10% of the users; returns (train, their test pairs, the users)."""
    return cold_split(events, train, test, seed, "user_id", COLD_USER_FRACTION)


@dataclasses.dataclass(frozen=True)
class Users:
    """The user table and its declared features, which every example carries (a model reads them only when its
    configuration declares them)."""

    table: dict[str, input_contract.User] = dataclasses.field(default_factory=dict)
    declared: tuple[features.Feature, ...] = ()


def examples(events: list[input_contract.Event], items: dict[str, input_contract.Item], rows: np.ndarray,
             train: np.ndarray, users: Users | None = None) -> list[Any]:
    """tf.Examples for `rows`: history from the user's *training* events strictly before each event, the user's
    declared features, and the evaluation slices from training counts, built with ExampleGen's own functions."""
    by_user: dict[str, list[tuple[int, str]]] = collections.defaultdict(list)
    for i in train:
        by_user[events[i].user_id].append((events[i].timestamp, events[i].item_id))
    for history in by_user.values():
        history.sort()
    item_counts = collections.Counter(events[i].item_id for i in train)
    user_counts = collections.Counter(events[i].user_id for i in train)
    users = users or Users()
    result = []
    for i in rows:
        event = events[i]
        earlier = by_user.get(event.user_id, [])
        end = bisect.bisect_left(earlier, (event.timestamp, ""))
        history = [item for _, item in earlier[max(0, end - HISTORY_LENGTH):end]][::-1]
        example = executor.to_example(event, items[event.item_id], history, users.table.get(event.user_id),
                                      users.declared)
        result.append(executor.add_slices(("", example), item_counts, user_counts)[1])
    return result


def transform_config(settings: Settings, declared: tuple[features.Feature, ...] = ()) -> dict[str, Any]:
    return {"text_preset": settings.text_preset, "text_max_length": settings.text_max_length,
            "history_length": HISTORY_LENGTH, "max_categories": 4, "tasks": TASKS,
            "features": [dataclasses.asdict(feature) for feature in declared]}


def prepare(events: list[input_contract.Event], items: dict[str, input_contract.Item], train: np.ndarray,
            others: dict[str, np.ndarray], settings: Settings, directory: str, users: Users | None = None) -> str:
    """Transforms the splits (analyzing only `train`) and saves their columns and the catalogue's as .npz."""
    from benchmarks import in_process

    users = users or Users()
    tft_output = in_process.analyze(examples(events, items, train, train, users),
                                    transform_config(settings, users.declared), os.path.join(directory, "transform"),
                                    list(users.declared))
    for name, rows in {"train": train, **others}.items():
        columns = in_process.transform(tft_output, examples(events, items, rows, train, users))
        np.savez(os.path.join(directory, f"{name}.npz"), item_id=np.array([events[i].item_id for i in rows]),
                 **columns)
    from models import trainer

    catalogue = list(items.values())
    transformed = trainer.transform_catalogue(tft_output, catalogue, [])
    np.savez(os.path.join(directory, "catalogue.npz"), item_id=np.array([item.item_id for item in catalogue]),
             **{key: np.asarray(value) for key, value in transformed.items()})
    return directory


# === Metrics ===

def ranking_metrics(users: np.ndarray, catalogue: np.ndarray, true_rows: np.ndarray) -> dict[str, float]:
    """Top-100 accuracy (the protocol's, over the whole catalogue), Recall@10 and NDCG@10 (KerasRS metrics)."""
    import keras_rs

    recall, ndcg = keras_rs.metrics.RecallAtK(k=CUTOFF_K), keras_rs.metrics.NDCG(k=CUTOFF_K)
    hits = 0.0
    for start in range(0, len(users), EVAL_BATCH):
        scores = users[start:start + EVAL_BATCH] @ catalogue.T
        rows = true_rows[start:start + EVAL_BATCH]
        true_scores = scores[np.arange(len(rows)), rows][:, None]
        # Ties (items with identical embeddings, e.g. new items of an ids-only model, which all read the OOV row)
        # are broken at random: the chance that the true item lands among the first TOP_K.
        above = (scores > true_scores).sum(axis=1)
        tied = (scores == true_scores).sum(axis=1) - 1
        hits += float(np.clip((TOP_K - above) / (tied + 1), 0.0, 1.0).sum())
        relevant = np.zeros_like(scores)
        relevant[np.arange(len(rows)), rows] = 1.0
        recall.update_state(relevant, scores)
        ndcg.update_state(relevant, scores)
    return {"top_100_accuracy": hits / len(users), "recall_at_10": float(recall.result()),
            "ndcg_at_10": float(ndcg.result())}


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def evaluate(model: Any, split: dict[str, np.ndarray], catalogue: dict[str, np.ndarray], catalogue_rows: dict[str, int],
             cosine: bool) -> dict[str, float]:
    """Every metric of `model` on a transformed split; `cosine` scores retrieval on normalised embeddings."""
    keys = [key for key in split if key != "item_id"]
    users, ratings, clicks = [], [], []
    for start in range(0, len(split["item_id"]), EVAL_BATCH):
        batch = {key: split[key][start:start + EVAL_BATCH] for key in keys}
        outputs = model(batch, training=False)
        users.append(np.asarray(outputs[features.USER_EMBEDDING]))
        ratings.append(np.asarray(outputs[features.RATING_PREDICTION]))
        clicks.append(np.asarray(outputs[features.CLICK_PROBABILITY]))
    items = np.concatenate([np.asarray(model.item_tower(
        {key: value[start:start + EVAL_BATCH] for key, value in catalogue.items() if key != "item_id"}))
        for start in range(0, len(catalogue["item_id"]), EVAL_BATCH)])
    users = np.concatenate(users)
    if cosine:
        users, items = _normalise(users), _normalise(items)
    true_rows = np.array([catalogue_rows[item] for item in split["item_id"].astype(str)])
    labels = split[features.transformed_label(features.RATING_TASK)]
    metrics = ranking_metrics(users, items, true_rows)
    metrics["rmse"] = float(np.sqrt(np.mean((np.concatenate(ratings) - labels) ** 2)))
    metrics["click_auc"] = auc(split[features.transformed_label(features.CLICK_TASK)] > 0.5, np.concatenate(clicks))
    return metrics


def popularity_baseline(events: list[input_contract.Event], train: np.ndarray, test: np.ndarray,
                        catalogue_ids: list[str]) -> dict[str, float]:
    """The trivial baseline: everyone gets the most popular training items; every rating the training mean."""
    counts = collections.Counter(events[i].item_id for i in train)
    scores = np.array([counts.get(item, 0) - 1e-6 * row for row, item in enumerate(catalogue_ids)])  # no ties
    rows = {item: row for row, item in enumerate(catalogue_ids)}
    true_rows = np.array([rows[events[i].item_id] for i in test])
    metrics = ranking_metrics(np.ones((len(test), 1)), scores.reshape(-1, 1), true_rows)
    mean = float(np.mean([events[i].labels[features.RATING] for i in train]))
    metrics["rmse"] = float(np.sqrt(np.mean([(events[i].labels[features.RATING] - mean) ** 2 for i in test])))
    metrics["click_auc"] = 0.5
    return metrics


# === Training, one process per model ===

@dataclasses.dataclass
class Job:
    """One model to train on `train` (an .npz of `directory`) and measure on each of `evaluate_on`.

    `per_epoch`: measure after every epoch (model selection) instead of once at the end."""

    name: str
    kind: str  # "tfrs" or "mtrec"
    directory: str
    train: str
    evaluate_on: tuple[str, ...]
    epochs: int
    items_path: str = ""
    architecture: str = "mmoe"
    text_mode: str = "off"
    rating_weight: float = 1.0
    retrieval_weight: float = 1.0
    per_epoch: bool = False
    declared: tuple[features.Feature, ...] = ()  # the declared features the model reads
    model_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # model settings beside the defaults
    distinct_texts: bool = True
    steps: int = 0  # > 0: time this many batches (of settings.throughput_batch_size) after one; no metrics


def _load(directory: str, name: str) -> dict[str, np.ndarray]:
    with np.load(os.path.join(directory, f"{name}.npz")) as data:
        return {key: data[key] for key in data.files}


def mtrec_config(job: Job, settings: Settings) -> dict[str, Any]:
    """The Trainer custom_config of an mtrec job: defaults of pipeline.config, the benchmark's tasks."""
    from pipeline import config

    ids_only = job.text_mode == "off"
    model = dataclasses.replace(config.Model(), architecture=job.architecture, use_categories=not ids_only,
                                **job.model_options)
    text = config.TextEncoder(preset=settings.text_preset, mode=job.text_mode, max_length=settings.text_max_length,
                              backbone=settings.text_backbone, distinct_texts=job.distinct_texts)
    training = config.Training(batch_size=settings.batch_size, learning_rate=settings.learning_rate, seed=settings.seed)
    return {"model": {**dataclasses.asdict(model), "tasks": TASKS}, "text_encoder": dataclasses.asdict(text),
            "training": dataclasses.asdict(training),
            "features": [dataclasses.asdict(feature) for feature in job.declared]}


def _fit_dataset(columns: dict[str, np.ndarray], batch_size: int, seed: int, reshuffle: bool) -> Any:
    import tensorflow as tf

    inputs = {key: value for key, value in columns.items() if key != "item_id"}
    return tf.data.Dataset.from_tensor_slices(inputs).shuffle(
        len(columns["item_id"]), seed=seed, reshuffle_each_iteration=reshuffle).batch(batch_size)


def _build(job: Job, settings: Settings, train: dict[str, np.ndarray]) -> Any:
    """(compiled model, training dataset) of `job`, built by the Trainer's own `compiled_model`."""
    import tensorflow_transform as tft

    from models import trainer

    tft_output = tft.TFTransformOutput(os.path.join(job.directory, "transform"))
    catalogue = list(input_contract.read_items(job.items_path).values())
    if job.kind == "tfrs":
        tasks = [{"type": "retrieval", "weight": job.retrieval_weight},
                 {"type": "regression", "weight": job.rating_weight}]
        from pipeline.config import Training

        config = {"model": {"type": "tfrs", "embedding_dim": 32, "tasks": tasks},
                  "training": dataclasses.asdict(Training(**TFRS_TRAINING))}
        columns = {key: train[key] for key in (features.USER_INDEX, features.ITEM_INDEX, "item_id",
                                               features.transformed_label(features.RATING_TASK))}
        # The tutorial shuffles once and caches: every epoch sees the same batches.
        dataset = _fit_dataset(columns, TFRS_TRAINING["batch_size"], settings.seed, reshuffle=False).cache()
    else:
        import keras

        config = mtrec_config(job, settings)
        keras.utils.set_random_seed(settings.seed)
        dataset = _fit_dataset(train, settings.throughput_batch_size if job.steps else settings.batch_size,
                               settings.seed, reshuffle=True)
    return trainer.compiled_model(tft_output, config, dataset, catalogue), dataset


def train_and_measure(job: Job, settings: Settings) -> dict[str, Any]:
    """Runs in a fresh process: trains `job`, returns its metrics, throughput and the process's peak memory."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the Transform graph's WordPiece ops)

    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    catalogue = _load(job.directory, "catalogue")
    catalogue_rows = {item: row for row, item in enumerate(catalogue["item_id"].astype(str))}
    train = _load(job.directory, job.train)
    splits = {name: _load(job.directory, name) for name in job.evaluate_on}
    started = time.perf_counter()
    model, dataset = _build(job, settings, train)
    setup_seconds = time.perf_counter() - started
    if job.steps:
        model.fit(dataset.take(1), verbose=0)  # compiles the step
        started = time.perf_counter()
        model.fit(dataset.skip(1).take(job.steps), verbose=0)
        seconds = time.perf_counter() - started
        timed = min(job.steps * settings.throughput_batch_size,
                    max(len(train["item_id"]) - settings.throughput_batch_size, 0))
        return {"name": job.name, "epochs": 0, "metrics": {}, "train_seconds": seconds,
                "setup_seconds": setup_seconds, "examples_per_second": timed / seconds}
    measured: list[dict[str, Any]] = []
    train_seconds = 0.0
    epochs = 1 if job.per_epoch else job.epochs
    for _ in range(job.epochs if job.per_epoch else 1):
        started = time.perf_counter()
        model.fit(dataset, epochs=epochs, verbose=0)
        train_seconds += time.perf_counter() - started
        measured.append({name: evaluate(model, split, catalogue, catalogue_rows, cosine=job.kind == "mtrec")
                         for name, split in splits.items()})
    return {
        "name": job.name,
        "epochs": measured if job.per_epoch else job.epochs,
        "metrics": measured[-1],
        "train_seconds": train_seconds,
        "setup_seconds": setup_seconds,
        "examples_per_second": len(train["item_id"]) * job.epochs / train_seconds,
    }


def run_job(job: Job, settings: Settings) -> dict[str, Any]:
    """`train_and_measure` in a new process, so each model's peak memory is its own."""
    from benchmarks import process

    return process.run_with_peak(train_and_measure, job, settings)


def selection_score(metrics: dict[str, float]) -> float:
    """The validation criterion of a joint model: top-100 accuracy up, RMSE down, in their own units."""
    return metrics["top_100_accuracy"] - metrics["rmse"]


def select(results: list[dict[str, Any]]) -> tuple[str, int, float]:
    """(architecture, epochs, score) with the best validation score over every architecture and epoch."""
    candidates = [(selection_score(epoch["validation"]), result["architecture"], index + 1)
                  for result in results for index, epoch in enumerate(result["epochs"])]
    score, architecture, epochs = max(candidates)
    return architecture, epochs, score


# === The run ===

def load_movielens(data_dir: str, work_dir: str
                   ) -> tuple[list[input_contract.Event], dict[str, input_contract.Item], Users]:
    """The GroupLens files as contract events (in u.data order, which the protocol's shuffle starts from), the
    catalogue and the users with their demographics."""
    from pipeline.data import movielens

    events_path, items_path, users_path = movielens.convert(data_dir, os.path.join(work_dir, "csv"))
    items = input_contract.read_items(items_path)
    declared = movielens.declared_features()
    users = Users(input_contract.read_users(users_path, declared), tuple(declared))
    return list(input_contract.read_events(events_path, items)), items, users


ML_100K_FILES = ("u.data", "u.item", "u.genre", "u.user")


@dataclasses.dataclass
class Dataset:
    """What the benchmark runs on: contract events (in file order, which the protocol's shuffle starts from), the
    catalogue and its items.csv, the users, and the name that titles the report and its files."""

    name: str
    events: list[input_contract.Event]
    items: dict[str, input_contract.Item]
    items_path: str
    users: Users
    report_name: str


def load(data_dir: str, work_dir: str) -> Dataset:
    """The ML-100K files of `data_dir`, or its events.csv and items.csv in the CSV contract (labels `clicked` and
    `rating`, items with text; users.csv is not read, so the cold-user comparison is left out)."""
    if all(os.path.isfile(os.path.join(data_dir, name)) for name in ML_100K_FILES):
        events, items, users = load_movielens(data_dir, work_dir)
        return Dataset("MovieLens 100K", events, items, os.path.join(work_dir, "csv", input_contract.ITEMS_FILE),
                       users, "movielens-100k")
    contract = (input_contract.EVENTS_FILE, input_contract.ITEMS_FILE)
    if not all(os.path.isfile(os.path.join(data_dir, name)) for name in contract):
        raise input_contract.InputError(
            f"{data_dir}: neither the MovieLens 100K files ({', '.join(ML_100K_FILES)}) nor the CSV contract's "
            f"{' and '.join(contract)} found there")
    items_path = os.path.join(data_dir, input_contract.ITEMS_FILE)
    items = input_contract.read_items(items_path)
    events = list(input_contract.read_events(os.path.join(data_dir, input_contract.EVENTS_FILE), items))
    name = os.path.basename(os.path.normpath(os.path.abspath(data_dir)))
    return Dataset(name, events, items, items_path, Users(), f"movielens-protocol-{name}")


def run(events: list[input_contract.Event], items: dict[str, input_contract.Item], items_path: str, work_dir: str,
        settings: Settings | None = None, log: Any = print, users: Users | None = None,
        dataset: str = "MovieLens 100K") -> dict[str, Any]:
    """Every measurement of the benchmark; returns the report (see `write`). `users`: the user table and its
    features, for the cold-user comparison (left out without them)."""
    settings = settings or Settings()
    users = users or Users()
    train, test = protocol_split(len(events))
    fit, validation = holdout(train, VALIDATION_FRACTION, settings.seed)
    main_dir = os.path.join(work_dir, "protocol")
    log(f"transform: {len(train)} train, {len(test)} test events")
    prepare(events, items, train, {"fit": fit, "validation": validation, "test": test}, settings, main_dir)
    catalogue_ids = list(items)
    models = [{"name": "popularity / global mean", **popularity_baseline(events, train, test, catalogue_ids)}]

    for name, rating_weight, retrieval_weight in settings.tfrs_weightings:
        log(f"train: {name}")
        result = run_job(Job(name, "tfrs", main_dir, "train", ("test",), TFRS_TRAINING["epochs"], items_path,
                             rating_weight=rating_weight, retrieval_weight=retrieval_weight), settings)
        models.append(row(result, "test"))
        log(summary(models[-1]))

    selection, chosen = {}, {}
    for variant, text_mode in (("mtrec ids only", "off"), ("mtrec text (frozen)", "frozen")):
        candidates = []
        for architecture in settings.architectures:
            log(f"select: {variant}, {architecture}")
            result = run_job(Job(f"{variant} {architecture}", "mtrec", main_dir, "fit", ("validation",),
                                 settings.max_epochs, items_path, architecture, text_mode, per_epoch=True), settings)
            candidates.append({**result, "architecture": architecture})
            log("  validation per epoch: " + ", ".join(
                f"{e['validation']['top_100_accuracy']:.3f}/{e['validation']['rmse']:.3f}" for e in result["epochs"])
                + f" ({result['examples_per_second']:.0f} ex/s)")
        architecture, epochs, score = select(candidates)
        chosen[variant] = (architecture, epochs, text_mode)
        selection[variant] = {"architecture": architecture, "epochs": epochs, "validation_score": score,
                              "candidates": {c["architecture"]: [e["validation"] for e in c["epochs"]]
                                             for c in candidates}}
        log(f"train: {variant} ({architecture}, {epochs} epochs)")
        result = run_job(Job(variant, "mtrec", main_dir, "train", ("test",), epochs, items_path, architecture,
                             text_mode), settings)
        models.append({**row(result, "test"), "architecture": architecture})
        log(summary(models[-1]))

    behaviour, behaviour_targets = {}, {}
    if settings.user_behaviour:
        from benchmarks import user_behaviour

        behaviour = user_behaviour.compare(items_path, main_dir, chosen["mtrec text (frozen)"][0],
                                           next(model for model in models if model["name"] == "mtrec text (frozen)"),
                                           settings, log)
        behaviour_targets = user_behaviour.targets(behaviour)
    cold_train, cold_test, cold_items = cold_split(events, train, test, settings.seed)
    cold_dir = os.path.join(work_dir, "cold")
    log(f"transform: cold start, {len(cold_items)} cold items, {len(cold_test)} test pairs")
    prepare(events, items, cold_train, {"test": cold_test}, settings, cold_dir)
    cold = {}
    for variant, (architecture, epochs, text_mode) in chosen.items():
        log(f"train: cold start, {variant}")
        result = run_job(Job(variant, "mtrec", cold_dir, "train", ("test",), epochs, items_path, architecture,
                             text_mode), settings)
        cold[variant] = {"recall_at_100": result["metrics"]["test"]["top_100_accuracy"],
                         "recall_at_10": result["metrics"]["test"]["recall_at_10"]}
    new_items = new_item_comparison(events, items, items_path, chosen, os.path.join(work_dir, "time_split"),
                                    settings, log)
    cold_users = cold_user_comparison(events, items, items_path, train, test, chosen["mtrec ids only"], users,
                                      os.path.join(work_dir, "cold_users"), settings, log) if users.declared else {}
    return {
        "dataset": dataset,
        "protocol": {"events": len(events), "train": len(train), "test": len(test), "seed": PROTOCOL_SEED,
                     "validation_from_train": len(validation), "top_k": TOP_K,
                     "history": "training events strictly before the event, most recent first",
                     "click": "clicked (ML-100K: rating >= 4)"},
        "settings": dataclasses.asdict(settings),
        "models": models,
        "selection": selection,
        "cold_start": {"cold_items": len(cold_items), "test_pairs": len(cold_test), **cold},
        "cold_users": cold_users,
        "time_split_cold": new_items,
        **({"user_behaviour": behaviour} if behaviour else {}),
        "targets": {**targets(models, cold, new_items), **behaviour_targets},
    }


def new_item_comparison(events: list[input_contract.Event], items: dict[str, input_contract.Item], items_path: str,
                        chosen: dict[str, tuple[str, int, str]], directory: str, settings: Settings, log: Any
                        ) -> dict[str, Any]:
    """The chosen ids-only and text models trained on every event before the time split's cutoff, measured on the
    events of the items that appear only after it: items new to the model as they would be in production."""
    train, test, new = time_split(events)
    result: dict[str, Any] = {"new_items": len(new), "train": len(train), "test_pairs": len(test)}
    if not len(test):
        log("time split: no new items after the cutoff, nothing to measure")
        return result
    log(f"transform: time split, {len(new)} new items, {len(train)} train events, {len(test)} test pairs")
    prepare(events, items, train, {"test": test}, settings, directory)
    for variant, (architecture, epochs, text_mode) in chosen.items():
        log(f"train: time split, {variant}")
        measured = run_job(Job(variant, "mtrec", directory, "train", ("test",), epochs, items_path, architecture,
                               text_mode), settings)
        metrics = measured["metrics"]["test"]
        result[variant] = {"recall_at_100": metrics["top_100_accuracy"], "recall_at_10": metrics["recall_at_10"]}
    return result


def cold_user_comparison(events: list[input_contract.Event], items: dict[str, input_contract.Item], items_path: str,
                         train: np.ndarray, test: np.ndarray, chosen: tuple[str, int, str], users: Users,
                         directory: str, settings: Settings, log: Any) -> dict[str, Any]:
    """The chosen ids-only model, with and without the user features, on the test pairs of users who lost every
    training event: they bring no history, and their ids fall into the OOV row."""
    architecture, epochs, text_mode = chosen
    cold_train, cold_test, cold_users = cold_user_split(events, train, test, settings.seed)
    log(f"transform: cold users, {len(cold_users)} users, {len(cold_test)} test pairs")
    prepare(events, items, cold_train, {"test": cold_test}, settings, directory, users)
    result = {"cold_users": len(cold_users), "test_pairs": len(cold_test)}
    for variant, declared in (("without user features", ()), ("with user features", users.declared)):
        log(f"train: cold users, mtrec ids only {variant}")
        measured = run_job(Job(f"mtrec ids only {variant}", "mtrec", directory, "train", ("test",), epochs,
                               items_path, architecture, text_mode, declared=declared), settings)
        metrics = measured["metrics"]["test"]
        result[variant] = {"recall_at_100": metrics["top_100_accuracy"], "recall_at_10": metrics["recall_at_10"],
                           "rmse": metrics["rmse"], "click_auc": metrics["click_auc"]}
    return result


def summary(model: dict[str, Any]) -> str:
    return (f"  {model['name']}: top-100 {model['top_100_accuracy']:.3f}, RMSE {model['rmse']:.3f}, "
            f"{model['examples_per_second']:.0f} ex/s")


def row(result: dict[str, Any], split: str) -> dict[str, Any]:
    return {"name": result["name"], **result["metrics"][split],
            "examples_per_second": result["examples_per_second"], "peak_memory_mb": result["peak_memory_mb"],
            "epochs": result["epochs"] if isinstance(result["epochs"], int) else len(result["epochs"]),
            "setup_seconds": result["setup_seconds"]}


def targets(models: list[dict[str, Any]], cold: dict[str, dict[str, float]],
            new_items: dict[str, Any] | None = None) -> dict[str, Any]:
    """The issues' targets, each with the measured figures and whether it is met."""
    by_name = {model["name"]: model for model in models}
    text, ids = by_name.get("mtrec text (frozen)"), by_name.get("mtrec ids only")
    joint = max((m for m in (text, ids) if m), key=lambda m: m["top_100_accuracy"] - m["rmse"], default=None)
    tfrs = by_name.get("tfrs joint")
    result: dict[str, Any] = {}
    if joint:
        result["joint_top_100_accuracy >= 0.30"] = {"model": joint["name"], "value": joint["top_100_accuracy"],
                                                    "met": joint["top_100_accuracy"] >= 0.30}
        result["joint_rmse <= 0.92"] = {"model": joint["name"], "value": joint["rmse"], "met": joint["rmse"] <= 0.92}
    if len(cold) == 2:
        text_cold, ids_cold = cold["mtrec text (frozen)"], cold["mtrec ids only"]
        result["cold_start_text_beats_ids"] = {
            "text_recall_at_100": text_cold["recall_at_100"], "ids_recall_at_100": ids_cold["recall_at_100"],
            "met": text_cold["recall_at_100"] >= 2 * ids_cold["recall_at_100"] + 0.02}
        goal = 2 * BEFORE_ID_DROPOUT["cold_recall_at_100"]
        result[f"cold_text_recall_at_100 >= {goal:.3f} (2x before id dropout)"] = {
            "value": text_cold["recall_at_100"], "met": text_cold["recall_at_100"] >= goal}
    if text:
        floor = BEFORE_ID_DROPOUT["top_100_accuracy"] - 0.01
        result[f"text_top_100_accuracy >= {floor:.3f} (before id dropout - 0.01)"] = {
            "value": text["top_100_accuracy"], "met": text["top_100_accuracy"] >= floor}
        ceiling = BEFORE_ID_DROPOUT["rmse"] + 0.005
        result[f"text_rmse <= {ceiling:.3f} (before id dropout + 0.005)"] = {
            "value": text["rmse"], "met": text["rmse"] <= ceiling}
    new_items = new_items or {}
    if "mtrec text (frozen)" in new_items and "mtrec ids only" in new_items:
        text_new = new_items["mtrec text (frozen)"]["recall_at_100"]
        ids_new = new_items["mtrec ids only"]["recall_at_100"]
        result["time_split_text_recall_at_100 >= 5x ids only and >= 0.10"] = {
            "text_recall_at_100": text_new, "ids_recall_at_100": ids_new,
            "met": text_new >= 5 * ids_new and text_new >= 0.10}
    if text and tfrs:
        ratio = text["examples_per_second"] / tfrs["examples_per_second"]
        result["text_throughput >= 0.5x tfrs joint"] = {"ratio": ratio, "met": ratio >= 0.5}
    return result


COLUMNS = (("top_100_accuracy", "top-100 acc"), ("recall_at_10", "Recall@10"), ("ndcg_at_10", "NDCG@10"),
           ("rmse", "RMSE"), ("click_auc", "click AUC"), ("examples_per_second", "train ex/s"),
           ("peak_memory_mb", "peak MB"))


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# {report['dataset']}: mtrec vs the TFRS multitask tutorial", "",
             f"Protocol: {report['protocol']['train']} train / {report['protocol']['test']} test ratings "
             f"(tutorial shuffle, seed {report['protocol']['seed']}); top-100 accuracy over the whole catalogue; "
             f"click = {report['protocol']['click']}. Every figure below comes from the same run.", "",
             "| model | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for model in report["models"]:
        cells = []
        for key, _ in COLUMNS:
            value = model.get(key)
            cells.append("" if value is None else f"{value:.0f}" if key in ("examples_per_second", "peak_memory_mb")
                         else f"{value:.3f}")
        name = model["name"] + (f" ({model['architecture']}, {model['epochs']} ep)" if "architecture" in model else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cold = report["cold_start"]
    lines += ["", f"Cold start: {cold['cold_items']} items ({COLD_ITEM_FRACTION:.0%}) have no training events; "
              f"{cold['test_pairs']} test pairs. Recall@100 of those items over the whole catalogue:", ""]
    for variant in ("mtrec ids only", "mtrec text (frozen)"):
        if variant in cold:
            lines.append(f"- {variant}: {cold[variant]['recall_at_100']:.3f} "
                         f"(Recall@10 {cold[variant]['recall_at_10']:.3f})")
    new_items = report.get("time_split_cold", {})
    if new_items.get("test_pairs"):
        lines += ["", f"Time-split cold start: {new_items['new_items']} items first appear in the last "
                  f"{NEW_ITEM_FRACTION:.0%} of the timeline's events; the models train on the {new_items['train']} "
                  f"events before it and are measured on those items' {new_items['test_pairs']} events after it "
                  "(Recall@100 over the whole catalogue):", ""]
        for variant in ("mtrec ids only", "mtrec text (frozen)"):
            if variant in new_items:
                lines.append(f"- {variant}: {new_items[variant]['recall_at_100']:.3f} "
                             f"(Recall@10 {new_items[variant]['recall_at_10']:.3f})")
    cold_users = report.get("cold_users")
    if cold_users:
        lines += ["", f"Cold users: {cold_users['cold_users']} users ({COLD_USER_FRACTION:.0%}) have no training "
                  f"events, so no history and an untrained id; {cold_users['test_pairs']} test pairs. The chosen "
                  "ids-only model:", ""]
        for variant in ("without user features", "with user features"):
            figures = cold_users[variant]
            lines.append(f"- {variant}: Recall@100 {figures['recall_at_100']:.3f}, RMSE {figures['rmse']:.3f}, "
                         f"click AUC {figures['click_auc']:.3f}")
    lines += ["", "Model selection (validation split from the training split; criterion top-100 accuracy - RMSE):", ""]
    for variant, chosen in report["selection"].items():
        lines.append(f"- {variant}: {chosen['architecture']}, {chosen['epochs']} epochs "
                     f"(validation score {chosen['validation_score']:.3f})")
    if "user_behaviour" in report:
        from benchmarks import user_behaviour

        lines += user_behaviour.markdown(report["user_behaviour"])
    lines += reports.target_lines(report["targets"])
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: str) -> None:
    reports.save_figure(path, 3, (15, 4), lambda axes: _draw(report, axes))


def _draw(report: dict[str, Any], axes: Any) -> None:
    names = [model["name"] for model in report["models"]]
    for axis, key, title in ((axes[0], "top_100_accuracy", "top-100 accuracy (higher is better)"),
                             (axes[1], "rmse", "RMSE (lower is better)")):
        axis.barh(names, [model[key] for model in report["models"]], color="#4c72b0")
        axis.set_title(title)
        axis.invert_yaxis()
    bars = [(f"{variant.removeprefix('mtrec ')}\n{split}", report[key][variant]["recall_at_100"])
            for key, split in (("cold_start", "random cold"), ("time_split_cold", "time split"))
            for variant in ("mtrec ids only", "mtrec text (frozen)") if variant in report.get(key, {})]
    axes[2].bar([name for name, _ in bars], [value for _, value in bars], color="#55a868")
    axes[2].set_title("new items: Recall@100")


def write(report: dict[str, Any], output_dir: str, name: str = "movielens-100k") -> list[str]:
    """Writes `name`.json, .md and .png to `output_dir`; returns the paths."""

    return reports.write(report, output_dir, name, markdown(report), lambda path: plot(report, path))
