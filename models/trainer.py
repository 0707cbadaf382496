"""Trainer's run_fn: builds the model from Transform's vocabularies, trains it, exports the serving model."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components.example_gen import input_contract
from components.example_gen.input_contract import Item
from models import (
    distillation,
    distribution,
    export,
    features,
    loss_balancing,
    optimizers,
    preprocessing,
    ranking,
    tasks,
    text_encoder,
    warm_start,
)
from models.catalogue import ItemCatalogue
from models.embedding import SparseEmbedding
from models.feature_encoder import FeatureEncoder
from models.model import MultiTaskRecommender
from models.sequence import HistoryTransformer, TargetAttention
from models.towers import ItemTower, UserTower

TRAINING_LOG_FILE = "training_log.json"
WARM_START_FILE = "warm_start.json"  # the CarryReport, beside the training log
# How `fit` shows progress: "bar" (a progress bar per epoch), "epoch" (a line per epoch) or "none". An
# environment variable rather than a Trainer property, so that changing it never invalidates a cached model.
PROGRESS_ENV = "MTREC_PROGRESS"
_VERBOSITY = {"bar": 1, "epoch": 2, "none": 0}


class TrainingLog:
    """Writes every epoch's losses, metrics and learning rate to a JSON file, for the run report.

    `on_epoch_end` takes what both Keras 3 and tf_keras (the TFRS baseline) callbacks receive."""

    def __init__(self, path: str, optimizer: Any):
        self.path = path
        self.optimizer = optimizer
        self.epochs: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        learning_rate = float(np.asarray(self.optimizer.learning_rate))
        self.epochs.append({"epoch": epoch + 1, "learning_rate": learning_rate,
                            **{name: float(value) for name, value in (logs or {}).items()}})
        with tf.io.gfile.GFile(self.path, "w") as handle:  # the model_run artifact may be on gs:// (Kubeflow)
            json.dump(self.epochs, handle, indent=2)


def _verbosity() -> int:
    default = "bar" if sys.stdout.isatty() else "epoch"
    return _VERBOSITY.get(os.environ.get(PROGRESS_ENV, default), _VERBOSITY[default])


def make_dataset(file_pattern: list[str], data_accessor: tfx.components.DataAccessor,
                 tft_output: tft.TFTransformOutput, batch_size: int, shuffle: bool) -> tf.data.Dataset:
    """One pass over transformed examples, as dicts of features and labels."""
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, shuffle=shuffle, num_epochs=1, shuffle_seed=0),
        tft_output.transformed_metadata.schema,
    )


@dataclasses.dataclass
class TrainStatistics:
    """What the model needs to know about the training data before training: item frequencies, label means."""

    item_counts: np.ndarray  # events per item index
    label_means: dict[str, float]  # regression task -> mean label

    @property
    def item_log_frequency(self) -> np.ndarray:
        """Log share of training events per item index; unseen items get the share of half an event."""
        counts = np.maximum(self.item_counts.astype(np.float64), 0.5)
        return np.log(counts / max(float(self.item_counts.sum()), 1.0)).astype(np.float32)


def train_statistics(dataset: tf.data.Dataset, num_items: int, task_list: list[tasks.Task]) -> TrainStatistics:
    """One pass over the (batched, transformed) training data."""
    counts = np.zeros(num_items, np.int64)
    regression = [task.name for task in task_list if task.type == tasks.REGRESSION]
    sums = dict.fromkeys(regression, 0.0)
    rows = 0
    for batch in dataset:
        counts += np.bincount(batch[features.ITEM_INDEX].numpy().reshape(-1), minlength=num_items)[:num_items]
        rows += int(batch[features.ITEM_INDEX].shape[0])
        for name in regression:
            sums[name] += float(tf.reduce_sum(batch[features.transformed_label(name)]))
    return TrainStatistics(counts, {name: total / max(rows, 1) for name, total in sums.items()})


def index_sizes(tft_output: tft.TFTransformOutput) -> tuple[int, int, int]:
    """(users, items, categories): vocabulary plus OOV buckets, plus the padding index for items and categories."""
    oov = preprocessing.OOV_BUCKETS
    return (tft_output.vocabulary_size_by_name(features.USER_VOCABULARY) + oov,
            tft_output.vocabulary_size_by_name(features.ITEM_VOCABULARY) + oov + 1,
            tft_output.vocabulary_size_by_name(features.CATEGORY_VOCABULARY) + oov + 1)


def feature_sizes(tft_output: tft.TFTransformOutput, declared: list[features.Feature]) -> dict[str, int]:
    """Declared feature name -> size of its index space (index 0: missing or padding), for the embedded ones."""
    sizes = {}
    for feature in declared:
        if feature.is_dense:
            continue
        if feature.type == features.TIMESTAMP_PART:
            size = features.TIMESTAMP_PARTS[feature.part]
        elif feature.type == features.NUMERIC:
            size = feature.buckets
        elif feature.hash_buckets:
            size = feature.hash_buckets
        else:
            size = tft_output.vocabulary_size_by_name(feature.vocabulary_name) + preprocessing.OOV_BUCKETS
        sizes[feature.name] = size + 1
    return sizes


def transform_catalogue(tft_output: tft.TFTransformOutput, catalogue: list[Item], declared: list[features.Feature],
                        with_unknown: bool = False) -> dict[str, tf.Tensor]:
    """Every catalogue item's transformed item features (index, categories, tokenized text, declared ones).
    `with_unknown` appends one more row: an id outside the catalogue, as serving encodes it (no text, no
    categories, missing features)."""
    items = export.catalogue_table(catalogue, declared)
    ids = tf.concat([items.keys, [""]], 0) if with_unknown else items.keys  # "" is no item's id
    return tft_output.transform_features_layer()(export.raw_item_features(ids, items))


def item_catalogue(tft_output: tft.TFTransformOutput, catalogue: list[Item], declared: list[features.Feature],
                   input_names: list[str]) -> ItemCatalogue:
    """The model's table of every catalogue item's content (`input_names` but the id index), and the unknown
    item's, as serving encodes an item it does not know."""
    transformed = transform_catalogue(tft_output, catalogue, declared, with_unknown=True)
    return ItemCatalogue(np.asarray(transformed[features.ITEM_KEY])[:-1],
                         {name: np.asarray(transformed[name]) for name in input_names if name != features.ITEM_INDEX},
                         name="item_catalogue")


def build_tfrs_model(tft_output: tft.TFTransformOutput, config: dict[str, Any], catalogue: list[Item]) -> Any:
    """The TFRS tutorial baseline (tf_keras), weighted by the configured retrieval and rating tasks."""
    from models.tfrs_baseline import TFRSMultitaskModel

    weights = {task["type"]: task["weight"] for task in config["model"]["tasks"]}
    num_users, num_items, _ = index_sizes(tft_output)
    candidates = sorted(set(np.asarray(transform_catalogue(tft_output, catalogue, [])[features.ITEM_INDEX]).tolist()))
    return TFRSMultitaskModel(num_users, num_items, candidates, rating_weight=weights[tasks.REGRESSION],
                              retrieval_weight=weights[tasks.RETRIEVAL], embedding_dim=config["model"]["embedding_dim"])


def build_text_encoder(config: dict[str, Any], tft_output: tft.TFTransformOutput,
                       catalogue: list[Item] | None) -> keras.layers.Layer | None:
    """The text tower of `config["text_encoder"]`; a frozen one is cached over `catalogue`'s texts."""
    text = config["text_encoder"]
    if text["mode"] == "off":
        return None
    encoder = text_encoder.TextEncoder(
        text_encoder.build_backbone(text["preset"], text["backbone"], text["max_length"]),
        pooling=text["pooling"], trainable_layers=text["trainable_layers"] if text["mode"] == "finetune" else 0,
        distinct=text["distinct_texts"], name="text_encoder")
    if text["mode"] == "finetune":
        return encoder
    cached = text_encoder.CachedTextEncoder(encoder, name="cached_text_encoder")
    if catalogue:
        # The unknown item's text too: history padding and ids outside the catalogue read it (models.catalogue),
        # and a batch with one text outside the cache runs the encoder on every row.
        transformed = transform_catalogue(tft_output, catalogue, features.declared(config["features"]),
                                          with_unknown=True)
        cached.build_cache(transformed[features.TEXT_TOKEN_IDS], transformed[features.TEXT_PADDING_MASK])
    return cached


def build_model(tft_output: tft.TFTransformOutput, config: dict[str, Any],
                statistics: TrainStatistics | None = None, catalogue: list[Item] | None = None) -> keras.Model:
    """The model of `config` (the Trainer's custom_config) sized by Transform's vocabularies."""
    model_config = config["model"]
    task_list = [tasks.Task.from_config(task) for task in model_config["tasks"]]
    num_users, num_items, num_categories = index_sizes(tft_output)
    declared = features.declared(config["features"])
    sizes = feature_sizes(tft_output, declared)

    def encoder(source: str) -> FeatureEncoder | None:
        of_source = features.of_source(declared, source)
        return FeatureEncoder(of_source, sizes, model_config["feature_embedding_dim"],
                              name=f"{source}_features") if of_source else None

    dim = model_config["embedding_dim"]
    item_embedding = SparseEmbedding(num_items, dim, name="item_id_embedding")
    architecture = ranking.build_architecture(
        model_config["architecture"], len(tasks.ranking_tasks(task_list)), model_config["num_experts"],
        model_config["num_task_experts"], model_config["num_levels"], model_config["expert_units"])
    use_logq = model_config["logq_correction"] and statistics is not None
    item_tower = ItemTower(item_embedding, num_categories if model_config["use_categories"] else 0,
                           build_text_encoder(config, tft_output, catalogue), dim, encoder(features.ITEMS_SOURCE),
                           id_dropout=model_config["item_id_dropout"], name="item_tower")
    sequence_encoder = None
    if model_config["user_tower"] == "transformer":
        history_length = tft_output.transformed_feature_spec()[features.HISTORY_INDICES].shape[0]
        sequence_encoder = HistoryTransformer(history_length, model_config["sequence_layers"],
                                              model_config["sequence_heads"], intermediate_dim=2 * dim,
                                              name="history_transformer")
    item_catalogue_table = None
    if sequence_encoder is not None or model_config["target_attention"]:
        if not catalogue:
            raise ValueError("A transformer user tower and target attention read history items through the item "
                             "tower: the model needs the item catalogue.")
        item_catalogue_table = item_catalogue(tft_output, catalogue, declared, item_tower.input_names)
    return MultiTaskRecommender(
        user_tower=UserTower(num_users, item_embedding, dim, encoder(features.USERS_SOURCE), sequence_encoder,
                             name="user_tower"),
        item_tower=item_tower,
        catalogue=item_catalogue_table,
        target_attention=(TargetAttention(model_config["tower_units"], name="target_attention")
                          if model_config["target_attention"] else None),
        context_features=encoder(features.EVENTS_SOURCE),
        tasks=task_list,
        architecture=architecture,
        loss_balancing=loss_balancing.build_loss_balancing(model_config["loss_balancing"], task_list),
        tower_units=model_config["tower_units"],
        feature_cross_layers=model_config["feature_cross_layers"],
        temperature=model_config["temperature"],
        item_log_frequency=statistics.item_log_frequency if use_logq else None,
        label_means=statistics.label_means if statistics is not None else None,
        distillation=(distillation.Distillation.from_config(config["distillation"])
                      if config.get("distillation") else None),
        name="multi_task_recommender",
    )


def compiled_model(tft_output: tft.TFTransformOutput, config: dict[str, Any], train: tf.data.Dataset,
                   catalogue: list[Item]) -> Any:
    """The configured model (mtrec, or the TFRS baseline with the tutorial's Adagrad), built for the batched,
    transformed `train` data (one pass reads its item frequencies and label means) and compiled as
    `config["training"]` says: learning rate, distribution strategy, mixed precision and XLA (the TFRS baseline:
    learning rate and strategy only)."""
    training = config["training"]
    with distribution.strategy(training["distribution"]).scope():
        if config["model"]["type"] == "tfrs":
            import tf_keras

            model = build_tfrs_model(tft_output, config, catalogue)
            model.compile(optimizer=tf_keras.optimizers.Adagrad(training["learning_rate"]))
            return model
        task_list = [tasks.Task.from_config(task) for task in config["model"]["tasks"]]
        statistics = train_statistics(train, index_sizes(tft_output)[1], task_list)
        with distribution.precision(training["mixed_precision"]):
            model = build_model(tft_output, config, statistics, catalogue)
        model.compile(optimizer=optimizers.create(training["optimizer"], training["learning_rate"]),
                      jit_compile=training["jit_compile"])
    return model


@dataclasses.dataclass
class TrainingSetup:
    """What run_fn has ready before it trains."""

    model: Any
    train: tf.data.Dataset
    evaluation: tf.data.Dataset
    tft_output: tft.TFTransformOutput
    catalogue: list[Item]
    users: list[input_contract.User]
    declared: list[features.Feature]
    teacher: distillation.Teacher | None = None


def prepare_training(fn_args: tfx.components.FnArgs) -> TrainingSetup:
    """The datasets and the compiled model of the Trainer's `fn_args` (run_fn's steps before `fit`, which the scale
    benchmark times on their own). With `distillation`, the examples are raw ones: the datasets run the student's
    Transform layer and the teacher on each batch (models.distillation)."""
    config = fn_args.custom_config
    # Grappler's AddOpsRewrite can create clashing temporary variables on CPU (AlreadyExistsError mid-epoch,
    # tensorflow/tensorflow#33713); the rewrite only saves a few additions, so it is off.
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    training = config["training"]
    keras.utils.set_random_seed(training["seed"])
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    batch_size = training["batch_size"]
    declared = features.declared(config["features"])
    catalogue = list(input_contract.read_items(config["items_path"], config["require_text"], declared).values())
    users = list(input_contract.read_users(config["users_path"], declared).values())
    settings, teacher = config.get("distillation"), None
    if settings is None:
        train = make_dataset(fn_args.train_files, fn_args.data_accessor, tft_output, batch_size, shuffle=True)
        evaluation = make_dataset(fn_args.eval_files, fn_args.data_accessor, tft_output, batch_size, shuffle=False)
        model = compiled_model(tft_output, config, train, catalogue)
    else:
        teacher = distillation.Teacher(distillation.resolve_teacher(settings["teacher"], fn_args.base_model))
        logging.info("Distillation: teacher %s (outputs %s)", teacher.path, ", ".join(teacher.output_names))
        model = compiled_model(tft_output, config, distillation.dataset(fn_args.train_files, tft_output, batch_size,
                                                                        shuffle=False), catalogue)
        train = distillation.dataset(fn_args.train_files, tft_output, batch_size, shuffle=True,
                                     seed=training["seed"], teacher=teacher)
        evaluation = distillation.dataset(fn_args.eval_files, tft_output, batch_size, shuffle=False, teacher=teacher)
    return TrainingSetup(model, train, evaluation, tft_output, catalogue, users, declared, teacher)


def build_variables(model: Any, dataset: tf.data.Dataset) -> None:
    """Creates the model's variables (Keras builds on the first call) under its strategy, by calling it on one
    batch, so that warm start can assign them before `fit`."""
    with model.distribute_strategy.scope():
        model(next(iter(dataset.take(1))), training=False)


def apply_warm_start(fn_args: tfx.components.FnArgs, setup: TrainingSetup) -> int:
    """With `training.warm_start` on, carries the latest blessed model's weights (fn_args.base_model) into the
    model, logs what carried and writes it to WARM_START_FILE; returns the epochs to train: `warm_start_epochs`
    after a carry, `epochs` without a base model (the first run) or warm start off. A base model whose state
    cannot carry fails the Trainer (warm_start.WarmStartError) rather than cold starting unnoticed."""
    training = fn_args.custom_config["training"]
    if not training["warm_start"]:
        return training["epochs"]
    if not fn_args.base_model:
        logging.info("Warm start: no blessed model yet, training from scratch for %d epochs", training["epochs"])
        return training["epochs"]
    build_variables(setup.model, setup.train)
    report = warm_start.carry(setup.model, setup.tft_output, fn_args.custom_config,
                              warm_start.artifact_dir(fn_args.base_model))
    for line in report.lines():
        logging.info(line)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, WARM_START_FILE), "w") as handle:
        handle.write(report.to_json())
    epochs = training["warm_start_epochs"]
    logging.info("Warm start: training %d epochs", epochs)
    return epochs


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point (GenericExecutor). `custom_config["items_path"]` is the catalogue to index,
    `custom_config["users_path"]` the user table to bake in (read when a user feature is declared),
    `custom_config["require_text"]` whether items need a title (the text tower is on) and
    `custom_config["features"]` the declared features. With `training.warm_start`, starts from the base model's
    weights (warm_start_epochs); an mtrec model always saves its warm start state into its Model artifact. With
    `custom_config["distillation"]`, the examples are raw ones and the model learns from a teacher's outputs too
    (models.distillation); the student records its teacher in its Model artifact."""
    config = fn_args.custom_config
    is_tfrs = config["model"]["type"] == "tfrs"
    if is_tfrs and config["training"]["warm_start"]:
        raise warm_start.WarmStartError("training.warm_start: the TFRS baseline does not support warm start")
    setup = prepare_training(fn_args)
    model = setup.model
    epochs = apply_warm_start(fn_args, setup)
    distilled = [task.name for task in model.distilled_tasks(setup.teacher.output_names)] if setup.teacher else []
    if setup.teacher is not None:
        logging.info("Distillation: soft losses for %s", ", ".join(distilled) or "no task")
    log = TrainingLog(os.path.join(fn_args.model_run_dir, TRAINING_LOG_FILE), model.optimizer)
    if is_tfrs:
        import tf_keras as callbacks_keras
    else:
        callbacks_keras = keras
    callbacks = [callbacks_keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir),
                 callbacks_keras.callbacks.LambdaCallback(on_epoch_end=log.on_epoch_end)]
    model.fit(setup.train, validation_data=setup.evaluation, epochs=epochs, callbacks=callbacks,
              verbose=_verbosity())
    export.save_serving_model(model, setup.tft_output, setup.catalogue, fn_args.serving_model_dir, setup.users,
                              setup.declared)
    artifact_dir = warm_start.artifact_dir(fn_args.serving_model_dir)
    if not is_tfrs:  # any blessed model can be a later run's base
        warm_start.save_state(model, setup.tft_output, config, artifact_dir)
    if setup.teacher is not None:
        distillation.write_record(artifact_dir, setup.teacher.path, model.distillation, distilled)

