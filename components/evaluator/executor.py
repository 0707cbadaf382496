"""The Evaluator's executor: TFX's, once the thresholds that depend on the data are set.

The train split's mean label is known only at run time, so the EvalConfig built with the pipeline cannot hold
that bound. Before TFMA runs, this executor reads the label (and weight) columns of the train and eval splits and
lowers each regression task's RMSE upper bound (max_rmse) to the eval-split RMSE of always predicting the train
mean, where that is stricter. A model that does no better than the trivial predictor is then not blessed. It
widens each binary task's calibration band by the chance allowance of the eval split's label count
(`calibration_allowance`), so a calibrated model is not refused for a handful of positives.

It writes each task's trivial baseline beside the evaluation (TRIVIAL_BASELINES_FILE), keyed by TFMA's metric
names, so the run summary and the report show them beside the model's figures: the train-mean predictor's RMSE
for a regression task, the random ranker's AUC and a calibrated model's calibration (and its allowance) for a
binary task.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow_model_analysis.proto import config_pb2 as tfma
from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.example_gen.executor import EVAL, TRAIN, read_split, split_files

TRIVIAL_BASELINES_FILE = "trivial_baselines.json"  # in the ModelEvaluation artifact: {task: {metric: value}}
# TFMA's class names of the gated metrics.
AUC_METRIC, CALIBRATION_METRIC, RMSE_METRIC = "AUC", "Calibration", "RootMeanSquaredError"
RANDOM_AUC = 0.5  # the AUC of a ranker that knows nothing
CALIBRATED = 1.0  # mean prediction / mean label of a calibrated model
# The calibration band is widened by this many relative standard errors of the eval split's mean label (about 95%):
# on a sparse label a calibrated model's measured calibration strays far (1.83 on 5 positives in a small run).
NOISE_Z = 2.0
_BATCH = 8192


def _gated_outputs(eval_config: tfma.EvalConfig, class_name: str) -> list[str]:
    """The output (task) names whose metrics include `class_name`."""
    return [name for spec in eval_config.metrics_specs if any(m.class_name == class_name for m in spec.metrics)
            for name in spec.output_names]


def read_columns(split_uri: str, columns: set[str]) -> dict[str, np.ndarray]:
    """`columns` of every example in the split's gzipped TFRecord files, as float64 arrays. Only those columns
    are parsed; each holds one number per example (a label or a weight), int64 or float as the first example has it."""
    files = split_files(split_uri)
    if not files:
        raise ValueError(f"{split_uri}: no examples to compute the trivial baselines from")
    first = tf.train.Example.FromString(next(iter(read_split(files[:1], 1)))[0].numpy())
    spec = {column: tf.io.FixedLenFeature([], tf.int64 if first.features.feature[column].HasField("int64_list")
                                          else tf.float32) for column in columns}
    parsed: dict[str, list[np.ndarray]] = {column: [] for column in columns}
    for batch in read_split(files, _BATCH).map(lambda x: tf.io.parse_example(x, spec)):
        for column, values in batch.items():
            parsed[column].append(values.numpy().astype(np.float64))
    return {column: np.concatenate(values) for column, values in parsed.items()}


def train_mean_baseline(train_labels: np.ndarray, train_weights: np.ndarray, eval_labels: np.ndarray,
                        eval_weights: np.ndarray) -> dict[str, float] | None:
    """The train split's weighted mean label, and the weighted RMSE of predicting it for every eval example (as
    TFMA weighs the model's RMSE); None when either split has no weight (e.g. no given label is 1)."""
    if train_weights.sum() <= 0 or eval_weights.sum() <= 0:
        return None
    mean = float(np.average(train_labels, weights=train_weights))
    rmse = float(np.sqrt(np.average((eval_labels - mean) ** 2, weights=eval_weights)))
    return {"train_mean": mean, "root_mean_squared_error": rmse}


def calibration_allowance(labels: np.ndarray, weights: np.ndarray) -> float | None:
    """How far a calibrated model's measured calibration strays by chance: exp(NOISE_Z relative standard errors
    of the eval split's weighted mean label, sqrt((1 - p) / positives)). None without a positive label."""
    positives = float(np.sum(weights * labels))
    if positives <= 0:
        return None
    rate = positives / float(np.sum(weights))
    return math.exp(NOISE_Z * math.sqrt((1 - rate) / positives))


def trivial_baselines(eval_config: tfma.EvalConfig, train_split_uri: str, eval_split_uri: str
                      ) -> dict[str, dict[str, float]]:
    """Per gated task: the train-mean predictor's figures (regression); the random ranker's AUC, a calibrated
    model's calibration and the calibration's chance allowance (binary). A task with an example weight key is
    weighted by it, as TFMA weighs it."""
    model_spec = eval_config.model_specs[0]
    binary, regression = _gated_outputs(eval_config, AUC_METRIC), _gated_outputs(eval_config, RMSE_METRIC)
    weight_columns = {name: model_spec.example_weight_keys.get(name) for name in (*binary, *regression)}
    columns = {model_spec.label_keys[name] for name in weight_columns} | set(filter(None, weight_columns.values()))
    evaluation = read_columns(eval_split_uri, columns) if columns else {}
    train = read_columns(train_split_uri, columns) if regression else {}

    def labels_and_weights(split: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
        labels = split[model_spec.label_keys[name]]
        return labels, split[weight_columns[name]] if weight_columns[name] else np.ones_like(labels)

    baselines: dict[str, dict[str, float]] = {}
    for name in binary:
        baselines[name] = {"auc": RANDOM_AUC, "calibration": CALIBRATED}
        allowance = calibration_allowance(*labels_and_weights(evaluation, name))
        if allowance is None:
            logging.warning("%s: no positive label in the eval split; its calibration is not gated.", name)
        else:
            baselines[name]["calibration_allowance"] = allowance
    for name in regression:
        baseline = train_mean_baseline(*labels_and_weights(train, name), *labels_and_weights(evaluation, name))
        if baseline is None:
            logging.warning("%s: no weighted examples in a split; its RMSE is not gated by the train mean.", name)
        else:
            baselines[name] = baseline
    return baselines


def apply_baselines(eval_config: tfma.EvalConfig, baselines: dict[str, dict[str, float]]) -> None:
    """Lowers each regression task's RMSE upper bound to its train-mean predictor's RMSE where that is stricter,
    and widens each binary task's calibration band by its chance allowance (drops it where there is none)."""
    for spec in eval_config.metrics_specs:
        for name in spec.output_names:
            baseline = baselines.get(name, {})
            for metric in spec.metrics:
                if metric.class_name == RMSE_METRIC and "train_mean" in baseline:
                    rmse = baseline["root_mean_squared_error"]
                    for per_slice in metric.per_slice_thresholds:
                        bounds = per_slice.threshold.value_threshold
                        bounds.upper_bound.value = min(bounds.upper_bound.value, rmse) if bounds.HasField(
                            "upper_bound") else rmse
                elif metric.class_name == CALIBRATION_METRIC and name in baselines:
                    allowance = baseline.get("calibration_allowance")
                    if allowance is None:
                        del metric.per_slice_thresholds[:]
                    for per_slice in metric.per_slice_thresholds:
                        bounds = per_slice.threshold.value_threshold
                        bounds.lower_bound.value /= allowance
                        bounds.upper_bound.value *= allowance


class Executor(evaluator_executor.Executor):
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        """TFX's Evaluator, with `eval_config`'s bounds set from the trivial baselines, which it writes too.

        Args:
          input_dict: `examples` (with train and eval splits), `model`, optionally `baseline_model`.
          output_dict: `evaluation` (receives TRIVIAL_BASELINES_FILE too) and `blessing`.
          exec_properties: `eval_config`, a JSON tfma.EvalConfig; the rest as TFX's Evaluator takes them.
        """
        if not exec_properties.get(standard_component_specs.EVAL_CONFIG_KEY):
            super().Do(input_dict, output_dict, exec_properties)
            return
        eval_config = tfma.EvalConfig()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.EVAL_CONFIG_KEY], eval_config)
        examples = input_dict[standard_component_specs.EXAMPLES_KEY]
        baselines = trivial_baselines(eval_config, artifact_utils.get_split_uri(examples, TRAIN),
                                      artifact_utils.get_split_uri(examples, EVAL))
        apply_baselines(eval_config, baselines)
        logging.info("Trivial baselines: %s", baselines)
        super().Do(input_dict, output_dict, {
            **exec_properties, standard_component_specs.EVAL_CONFIG_KEY: proto_utils.proto_to_json(eval_config)})
        output_uri = artifact_utils.get_single_uri(output_dict[standard_component_specs.EVALUATION_KEY])
        with tf.io.gfile.GFile(os.path.join(output_uri, TRIVIAL_BASELINES_FILE), "w") as handle:
            handle.write(json.dumps(baselines, sort_keys=True))
