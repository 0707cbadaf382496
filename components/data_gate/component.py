"""DataGate: stops the pipeline before Transform when the data is not fit to train on.

Two checks, one message listing every problem: the share of quarantined rows of each input file (ExampleGen's
row counts) against `max_bad_fraction`, and the anomalies DataValidator found (schema, drift, skew), one line
per feature with TFDV's reason. When both pass, the gate publishes the statistics as `validated_statistics`,
the baseline of the next run's drift check; a run that fails never becomes a baseline.
"""

import json
import os

from tensorflow_data_validation.utils import anomalies_util
from tfx import v1 as tfx
from tfx.components.example_validator import executor as example_validator_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.artifacts import ValidatedStatistics
from components.example_gen import executor as example_gen_executor


class DataAnomaliesError(RuntimeError):
    """The data is not fit to train on; the message names each file or feature and the reason."""


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


def describe_quarantine(row_counts: dict, max_bad_fraction: float, quarantine_file: str) -> list[str]:
    """One line per input file whose share of quarantined rows is above `max_bad_fraction`."""
    problems = []
    for name, counts in sorted(row_counts.items()):
        share = counts["quarantined"] / max(counts["rows"], 1)
        if share > max_bad_fraction:
            by_column = ", ".join(f"{column}: {n}" for column, n in sorted(counts["by_column"].items()))
            problems.append(f"{name}: {counts['quarantined']} of {counts['rows']} rows quarantined ({share:.1%}, "
                            f"above validation.max_bad_fraction {max_bad_fraction:.1%}; by column: {by_column}); "
                            f"the rows and reasons are in {quarantine_file}")
    return problems


@tfx.dsl.components.component
def DataGate(
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    statistics: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleStatistics],
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
    validated_statistics: tfx.dsl.components.OutputArtifact[ValidatedStatistics],
    max_bad_fraction: tfx.dsl.components.Parameter[float],
) -> None:
    row_counts = json.loads(examples.get_string_custom_property(example_gen_executor.ROW_COUNTS_PROPERTY))
    quarantine_file = os.path.join(examples.uri, example_gen_executor.QUARANTINE_DIR,
                                   example_gen_executor.QUARANTINE_FILE)
    problems = describe_quarantine(row_counts, max_bad_fraction, quarantine_file)
    problems += describe_anomalies(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
    if problems:
        raise DataAnomaliesError("the data is not fit to train on:\n  " + "\n  ".join(problems))
    io_utils.copy_dir(statistics.uri, validated_statistics.uri)
