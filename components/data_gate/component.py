"""AnomaliesGate: stops the pipeline before Transform when ExampleValidator found anomalies.

ExampleValidator records anomalies but does not stop anything; this gate reads its SchemaDiff per split and
fails with one line per anomalous feature, so bad data never reaches training.
"""

import os

from tensorflow_data_validation.utils import anomalies_util
from tfx import v1 as tfx
from tfx.components.example_validator import executor as example_validator_executor
from tfx.types import artifact_utils


class DataAnomaliesError(RuntimeError):
    """The examples do not match the curated schema; the message names each feature and the reason."""


def describe_anomalies(uri: str, splits: list[str]) -> list[str]:
    """One line per anomaly in the ExampleAnomalies at `uri`: split, feature and TFDV's explanation."""
    problems = []
    for split in splits:
        path = os.path.join(uri, f"Split-{split}", example_validator_executor.DEFAULT_FILE_NAME)
        found = anomalies_util.load_anomalies_binary(path)
        for feature, info in sorted(found.anomaly_info.items()):
            reasons = "; ".join(reason.description for reason in info.reason) or info.description
            problems.append(f"split '{split}', feature '{feature}': {info.short_description} ({reasons})")
        if found.HasField("dataset_anomaly_info"):
            problems.append(f"split '{split}', dataset: {found.dataset_anomaly_info.description}")
    return problems


@tfx.dsl.components.component
def AnomaliesGate(anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies]
                  ) -> None:
    problems = describe_anomalies(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
    if problems:
        raise DataAnomaliesError("the data does not match the schema:\n  " + "\n  ".join(problems))
