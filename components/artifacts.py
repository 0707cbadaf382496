"""mtrec's own artifact type: statistics that passed the data gate, the baseline of the next run's drift check.

A type of its own, rather than ExampleStatistics from a named producer, because an orchestrator's artifact query
may only filter by type (TFX's Kubeflow V2 compiler drops the producer), and must never hand the drift check the
statistics of a run that failed the gate.
"""

import os

import tensorflow_data_validation as tfdv
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.io import fileio
from tfx.types import artifact


class ValidatedStatistics(artifact.Artifact):
    """A copy of StatisticsGen's output: Split-<split>/FeatureStats.pb per split. No properties, since a Kubeflow
    V2 spec gives custom artifact types none."""

    # A Kubeflow V2 spec carries a custom type only as its schema title, `namespace.Name`, and the container
    # entrypoint imports the class back from that title: so the title is this class's import path.
    TYPE_NAME = "components.ValidatedStatistics"


def load_split(validated: artifact.Artifact, split: str) -> object | None:
    """The DatasetFeatureStatisticsList of `split`, or None when the baseline has no such split."""
    path = os.path.join(validated.uri, f"Split-{split}", stats_artifact_utils.BINARY_PB_BASENAME)
    return tfdv.load_stats_binary(path) if fileio.exists(path) else None


class RetrievalEvaluation(artifact.Artifact):
    """The RetrievalEvaluator's figures (retrieval_metrics.json) and verdict: the int custom property `blessed`,
    which the Pusher requires to be 1."""

    TYPE_NAME = "components.RetrievalEvaluation"  # an import path, as for ValidatedStatistics
