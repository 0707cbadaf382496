"""The pipeline's Transform, run in-process with tft_beam (no TFX), for benchmarks and tests.

Rows come from ExampleGen's own functions (executor.to_example, executor.add_slices), so the features are the
ones a pipeline run produces; only the orchestration is skipped.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

import schema
from models import preprocessing


def example_row(example: tf.train.Example) -> dict[str, list[Any]]:
    """A tf.Example as the dict of value lists that tft_beam takes."""
    return {name: list(getattr(feature, feature.WhichOneof("kind")).value)
            for name, feature in example.features.feature.items()}


def analyze_and_transform(train_rows: list[dict], other_rows: dict[str, list[dict]], transform_config: dict[str, Any],
                          transform_dir: str) -> tuple[tft.TFTransformOutput, dict[str, dict[str, np.ndarray]]]:
    """Analyzes `train_rows` with the pipeline's preprocessing_fn, writes the transform graph to
    `transform_dir`, and returns it with every split's transformed columns ("train" and each of `other_rows`)."""
    raw_schema = text_format.Parse(pathlib.Path(schema.SCHEMA_FILE).read_text(), schema_pb2.Schema())
    metadata = dataset_metadata.DatasetMetadata(raw_schema)
    os.makedirs(transform_dir, exist_ok=True)
    splits = {}
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=transform_dir)):
        (transformed, _), transform_fn = (train_rows, metadata) | "AnalyzeAndTransform" >> (
            tft_beam.AnalyzeAndTransformDataset(
                lambda inputs: preprocessing.preprocessing_fn(inputs, transform_config)))
        splits["train"] = transformed
        for name, rows in other_rows.items():
            splits[name], _ = ((rows, metadata), transform_fn) | f"Transform{name}" >> tft_beam.TransformDataset()
        _ = transform_fn | "Write" >> tft_beam.WriteTransformFn(transform_dir)
    metadata_io.write_metadata(metadata, os.path.join(transform_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    columns = {name: {key: np.stack([row[key] for row in rows]) for key in rows[0]} for name, rows in splits.items()}
    return tft.TFTransformOutput(transform_dir), columns
