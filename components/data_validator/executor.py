"""DataValidator's executor: ExampleValidator's schema check, plus drift and skew.

TFX's ExampleValidator checks each split against the schema only. This executor also gives TFDV the statistics
of the last validated run (drift) and, for the train split, this run's eval split (skew; the eval data stands in
for serving traffic), so the schema's drift and skew comparators take effect. The output is an
ExampleAnomalies artifact in ExampleValidator's layout.
"""

from __future__ import annotations

import os
from typing import Any

import tensorflow_data_validation as tfdv
from tfx import types
from tfx.components.example_validator import executor as example_validator_executor
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, writer_utils

from components import artifacts

BASELINE_STATISTICS_KEY = "baseline_statistics"
# Skew compares what the model trains on with what it is evaluated on, the stand-in for serving traffic.
TRAIN_SPLIT, EVAL_SPLIT = "train", "eval"


def _load(statistics: types.Artifact, split: str) -> Any | None:
    if split not in artifact_utils.decode_split_names(statistics.split_names):
        return None
    return stats_artifact_utils.load_statistics(statistics, split).proto()


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        statistics = artifact_utils.get_single_instance(input_dict[standard_component_specs.STATISTICS_KEY])
        baselines = input_dict.get(BASELINE_STATISTICS_KEY) or []
        baseline = baselines[-1] if baselines else None
        schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(
            artifact_utils.get_single_uri(input_dict[standard_component_specs.SCHEMA_KEY])))
        anomalies = artifact_utils.get_single_instance(output_dict[standard_component_specs.ANOMALIES_KEY])
        splits = artifact_utils.decode_split_names(statistics.split_names)
        anomalies.split_names = artifact_utils.encode_split_names(splits)
        anomalies.span = statistics.span
        blessed = {}
        for split in splits:
            found = tfdv.validate_statistics(
                statistics=_load(statistics, split),
                schema=schema,
                previous_statistics=artifacts.load_split(baseline, split) if baseline else None,
                serving_statistics=_load(statistics, EVAL_SPLIT) if split == TRAIN_SPLIT else None,
            )
            writer_utils.write_anomalies(
                os.path.join(artifact_utils.get_split_uri([anomalies], split),
                             example_validator_executor.DEFAULT_FILE_NAME), found)
            blessed[split] = int(not (found.anomaly_info or found.HasField("dataset_anomaly_info")))
        anomalies.set_json_value_custom_property(example_validator_executor.ARTIFACT_PROPERTY_BLESSED_KEY, blessed)
