"""Builds a real serving SavedModel in seconds, without running TFX: tft_beam Transform, a short fit, export.

Tests and the serving benchmark use it; the model is small (a one-layer BERT) but every part is the real one.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
import tempfile

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

import schema
from components.example_gen import executor, input_contract
from models import export, features, preprocessing, trainer
from pipeline import config
from pipeline.data import synthetic

_MODEL = dataclasses.replace(config.Model(), embedding_dim=16, expert_units=[16], tower_units=[8], num_experts=2)
_TEXT = config.TextEncoder(max_length=16, backbone={"num_layers": 1, "num_heads": 2, "hidden_dim": 8,
                                                    "intermediate_dim": 16})
TRANSFORM_CONFIG = {"text_preset": "minilm", "text_max_length": 16, "history_length": 5, "max_categories": 2,
                    "tasks": [dataclasses.asdict(task) for task in _MODEL.tasks]}
TRAINER_CONFIG = {"model": dataclasses.asdict(_MODEL), "text_encoder": dataclasses.asdict(_TEXT)}
DATA = synthetic.SyntheticConfig(num_users=40, num_items=30, events_per_user=10, seed=11)


def _raw_rows(data_dir: str) -> list[dict]:
    items = input_contract.read_items(os.path.join(data_dir, input_contract.ITEMS_FILE))
    by_user: dict[str, list] = {}
    for event in input_contract.read_events(os.path.join(data_dir, input_contract.EVENTS_FILE), items):
        by_user.setdefault(event.user_id, []).append((event, items[event.item_id]))
    pairs = [pair for events in by_user.values() for pair in executor.user_examples(events, 5, "time", 0.2, 0)]
    train = [example.features.feature for split, example in pairs if split == executor.TRAIN]
    item_counts = collections.Counter(f[features.ITEM_ID].bytes_list.value[0].decode() for f in train)
    user_counts = collections.Counter(f[features.USER_ID].bytes_list.value[0].decode() for f in train)
    rows = []
    for pair in pairs:
        _, example = executor.add_slices(pair, item_counts, user_counts)
        rows.append({name: list(getattr(feature, feature.WhichOneof("kind")).value)
                     for name, feature in example.features.feature.items()})
    return rows


def build(root: str, data: synthetic.SyntheticConfig = DATA) -> tuple[str, str]:
    """Writes data to `root`/data and a SavedModel to `root`/model; returns both paths."""
    data_dir = os.path.join(root, "data")
    synthetic.generate(data_dir, data)
    raw_schema = text_format.Parse(pathlib.Path(schema.SCHEMA_FILE).read_text(), schema_pb2.Schema())
    metadata = dataset_metadata.DatasetMetadata(raw_schema)
    transform_dir = os.path.join(root, "transform")
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=root)):
        (transformed, transformed_metadata), transform_fn = (_raw_rows(data_dir), metadata) | (
            tft_beam.AnalyzeAndTransformDataset(
                lambda inputs: preprocessing.preprocessing_fn(inputs, TRANSFORM_CONFIG)))
        _ = transform_fn | tft_beam.WriteTransformFn(transform_dir)
    metadata_io.write_metadata(metadata, os.path.join(transform_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    tft_output = tft.TFTransformOutput(transform_dir)
    columns = {name: np.stack([row[name] for row in transformed]) for name in transformed[0]}
    dataset = tf.data.Dataset.from_tensor_slices(columns).batch(64)
    keras.utils.set_random_seed(0)
    catalogue = list(input_contract.read_items(os.path.join(data_dir, input_contract.ITEMS_FILE)).values())
    model = trainer.build_model(tft_output, TRAINER_CONFIG, catalogue=catalogue)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.fit(dataset, epochs=2, verbose=0)
    model_dir = os.path.join(root, "model")
    export.save_serving_model(model, tft_output, catalogue, model_dir)
    return data_dir, model_dir
