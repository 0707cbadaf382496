"""Trainer's run_fn: builds the model from Transform's vocabularies, trains it, exports the serving model."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import keras
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components.example_gen import input_contract
from models import export, features, preprocessing, text_encoder
from models.model import MultiTaskRecommender
from models.towers import ItemTower, UserTower

TRAINING_LOG_FILE = "training_log.json"
# How `fit` shows progress: "bar" (a progress bar per epoch), "epoch" (a line per epoch) or "none". An
# environment variable rather than a Trainer property, so that changing it never invalidates a cached model.
PROGRESS_ENV = "MTREC_PROGRESS"
_VERBOSITY = {"bar": 1, "epoch": 2, "none": 0}


class TrainingLog(keras.callbacks.Callback):
    """Writes every epoch's losses, metrics and learning rate to a JSON file, for the run report."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.epochs: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.epochs.append({"epoch": epoch + 1, "learning_rate": learning_rate,
                            **{name: float(value) for name, value in (logs or {}).items()}})
        with open(self.path, "w", encoding="utf-8") as handle:
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


def build_model(tft_output: tft.TFTransformOutput, config: dict[str, Any]) -> MultiTaskRecommender:
    """The model sized by Transform's vocabularies; `config` is the Trainer's custom_config."""
    oov = preprocessing.OOV_BUCKETS
    num_users = tft_output.vocabulary_size_by_name(features.USER_VOCABULARY) + oov
    num_items = tft_output.vocabulary_size_by_name(features.ITEM_VOCABULARY) + oov + 1
    num_categories = tft_output.vocabulary_size_by_name(features.CATEGORY_VOCABULARY) + oov + 1
    dim = config["embedding_dim"]
    text = config["text_encoder"]
    encoder = text_encoder.TextEncoder(
        text_encoder.build_backbone(text["preset"], text["backbone"], text["max_length"]),
        trainable=text["trainable"], name="text_encoder")
    item_embedding = keras.layers.Embedding(num_items, dim, name="item_id_embedding")
    return MultiTaskRecommender(
        user_tower=UserTower(num_users, item_embedding, dim, name="user_tower"),
        item_tower=ItemTower(item_embedding, num_categories, encoder, dim, name="item_tower"),
        task_weights=config["task_weights"],
        hidden_dim=config["hidden_dim"],
        temperature=config["temperature"],
        name="multi_task_recommender",
    )


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point (GenericExecutor). `custom_config["items_path"]` is the catalogue to index."""
    config = fn_args.custom_config
    # Grappler's AddOpsRewrite can create clashing temporary variables on CPU (AlreadyExistsError mid-epoch,
    # tensorflow/tensorflow#33713); the rewrite only saves a few additions, so it is off.
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    keras.utils.set_random_seed(config["seed"])
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    batch_size = config["batch_size"]
    train = make_dataset(fn_args.train_files, fn_args.data_accessor, tft_output, batch_size, shuffle=True)
    evaluation = make_dataset(fn_args.eval_files, fn_args.data_accessor, tft_output, batch_size, shuffle=False)
    with tf.distribute.get_strategy().scope():
        model = build_model(tft_output, config)
        model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
    model.fit(
        train,
        validation_data=evaluation,
        epochs=config["epochs"],
        callbacks=[keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir),
                   TrainingLog(os.path.join(fn_args.model_run_dir, TRAINING_LOG_FILE))],
        verbose=_verbosity(),
    )
    catalogue = list(input_contract.read_items(config["items_path"]).values())
    export.save_serving_model(model, tft_output, catalogue, fn_args.serving_model_dir)
