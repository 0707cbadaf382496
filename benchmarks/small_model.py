"""Builds a real serving SavedModel in seconds, without running TFX: tft_beam Transform, a short fit, export.

Tests and the serving benchmark use it; the model is small (a one-layer BERT) but every part is the real one.
"""

from __future__ import annotations

import collections
import dataclasses
import os

import keras
import tensorflow as tf

from benchmarks import in_process
from components.example_gen import executor, input_contract
from models import export, features, trainer
from pipeline import config
from pipeline.data import synthetic

_MODEL = dataclasses.replace(config.Model(tasks=config.default_tasks()), embedding_dim=16, expert_units=[16],
                             tower_units=[8], num_experts=2)
_TEXT = config.TextEncoder(max_length=16, backbone={"num_layers": 1, "num_heads": 2, "hidden_dim": 8,
                                                    "intermediate_dim": 16})
TRANSFORM_CONFIG = {"text_preset": "minilm", "text_max_length": 16, "history_length": 5, "max_categories": 2,
                    "tasks": [dataclasses.asdict(task) for task in _MODEL.tasks], "features": []}
TRAINER_CONFIG = {"model": dataclasses.asdict(_MODEL), "text_encoder": dataclasses.asdict(_TEXT), "features": []}
DATA = synthetic.SyntheticConfig(num_users=40, num_items=30, events_per_user=10, seed=11)


def _examples(data_dir: str, declared: list[features.Feature]) -> list[tf.train.Example]:
    items = input_contract.read_items(os.path.join(data_dir, input_contract.ITEMS_FILE), declared=declared)
    users = input_contract.read_users(os.path.join(data_dir, input_contract.USERS_FILE), declared)
    by_user: dict[str, list] = {}
    for line, event in enumerate(input_contract.read_events(os.path.join(data_dir, input_contract.EVENTS_FILE),
                                                            items, declared=declared), start=2):
        by_user.setdefault(event.user_id, []).append((line, event, items[event.item_id]))
    pairs = [pair for user, events in by_user.items()
             for pair in executor.user_examples(events, 5, "time", 0.2, 0, users.get(user), declared)]
    train = [example.features.feature for split, example in pairs if split == executor.TRAIN]
    item_counts = collections.Counter(f[features.ITEM_ID].bytes_list.value[0].decode() for f in train)
    user_counts = collections.Counter(f[features.USER_ID].bytes_list.value[0].decode() for f in train)
    return [executor.add_slices(pair, item_counts, user_counts)[1] for pair in pairs]


def build(root: str, data: synthetic.SyntheticConfig = DATA, declared: list[features.Feature] = (),
          model_options: dict | None = None) -> tuple[str, str]:
    """Writes data to `root`/data and a SavedModel to `root`/model; returns both paths. `declared`: the declared
    features the model reads (the generated data's own, or a subset; none by default). `model_options`: model
    settings that differ from the small model's (e.g. the user tower)."""
    declared = list(declared)
    declared_config = [dataclasses.asdict(feature) for feature in declared]
    data_dir = os.path.join(root, "data")
    synthetic.generate(data_dir, data)
    examples = _examples(data_dir, declared)
    tft_output = in_process.analyze(examples, {**TRANSFORM_CONFIG, "features": declared_config},
                                    os.path.join(root, "transform"), declared)
    dataset = tf.data.Dataset.from_tensor_slices(in_process.transform(tft_output, examples)).batch(64)
    keras.utils.set_random_seed(0)
    catalogue = list(input_contract.read_items(os.path.join(data_dir, input_contract.ITEMS_FILE),
                                               declared=declared).values())
    users = list(input_contract.read_users(os.path.join(data_dir, input_contract.USERS_FILE), declared).values())
    trainer_config = {**TRAINER_CONFIG, "model": {**TRAINER_CONFIG["model"], **(model_options or {})},
                      "features": declared_config}
    model = trainer.build_model(tft_output, trainer_config, catalogue=catalogue)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.fit(dataset, epochs=2, verbose=0)
    model_dir = os.path.join(root, "model")
    export.save_serving_model(model, tft_output, catalogue, model_dir, users, declared)
    return data_dir, model_dir
