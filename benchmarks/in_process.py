"""The pipeline's Transform, run in-process (no TFX), for benchmarks and tests.

Examples come from ExampleGen's own functions (executor.to_example, executor.add_slices), so the features are
the ones a pipeline run produces; only the orchestration is skipped. Analysis runs the pipeline's
preprocessing_fn in tft_beam over Arrow record batches (TFXIO), as the Transform component does; applying the
resulting graph to a split is then TF's own transform layer over parsed examples, which is what serving runs.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io
from tfx_bsl.public import tfxio

from models import features, preprocessing
from pipeline import config, local_runner

_BATCH = 4096


def raw_schema(declared: list[features.Feature] = (), tasks: list[config.Task] | None = None) -> schema_pb2.Schema:
    """The curated schema with the label columns of `tasks` (default: the CSV contract's, clicked and rating) and
    the `declared` features' columns."""
    return text_format.Parse(local_runner.labelled_schema(tasks or config.default_tasks(), declared),
                             schema_pb2.Schema())


def analyze(train: list[tf.train.Example], transform_config: dict[str, Any], transform_dir: str,
            declared: list[features.Feature] = (), tasks: list[config.Task] | None = None) -> tft.TFTransformOutput:
    """Analyzes `train` with the pipeline's preprocessing_fn and writes the transform graph to `transform_dir`;
    `declared` and `tasks`: the declared features and the tasks `transform_config` names (default: the CSV
    contract's)."""
    schema = raw_schema(declared, tasks)
    source = tfxio.TFExampleBeamRecord(physical_format="inmem", telemetry_descriptors=["mtrec"], schema=schema)
    os.makedirs(transform_dir, exist_ok=True)
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=transform_dir)):
        record_batches = (pipeline
                          | "Examples" >> beam.Create([example.SerializeToString() for example in train],
                                                      reshuffle=False)
                          | "RecordBatches" >> source.BeamSource())
        transform_fn = (record_batches, source.TensorAdapterConfig()) | "Analyze" >> tft_beam.AnalyzeDataset(
            lambda inputs: preprocessing.preprocessing_fn(inputs, transform_config))
        _ = transform_fn | "Write" >> tft_beam.WriteTransformFn(transform_dir)
    metadata_io.write_metadata(dataset_metadata.DatasetMetadata(schema),
                               os.path.join(transform_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    return tft.TFTransformOutput(transform_dir)


def transform(tft_output: tft.TFTransformOutput, examples: list[tf.train.Example]) -> dict[str, np.ndarray]:
    """The transformed columns of `examples`, through the same transform layer the serving model holds."""
    layer = tft_output.transform_features_layer()
    spec = tft_output.raw_feature_spec()
    batches = []
    for start in range(0, len(examples), _BATCH):
        serialized = tf.constant([example.SerializeToString() for example in examples[start:start + _BATCH]])
        batches.append({key: np.asarray(value) for key, value in layer(tf.io.parse_example(serialized, spec)).items()})
    return {key: np.concatenate([batch[key] for batch in batches]) for key in batches[0]}
