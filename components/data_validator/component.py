"""DataValidator: ExampleValidator with a baseline, so the schema's drift and skew comparators are checked.

Inputs: this run's statistics, the schema, and optionally the statistics of the last run whose data passed
the data gate (absent on a first run: no drift check then). Output: ExampleAnomalies, one SchemaDiff per split.
"""

from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel, component_spec, standard_artifacts, standard_component_specs

from components.artifacts import ValidatedStatistics
from components.data_validator import executor


class DataValidatorSpec(component_spec.ComponentSpec):
    PARAMETERS: dict = {}
    INPUTS = {
        standard_component_specs.STATISTICS_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ExampleStatistics),
        standard_component_specs.SCHEMA_KEY: component_spec.ChannelParameter(type=standard_artifacts.Schema),
        executor.BASELINE_STATISTICS_KEY: component_spec.ChannelParameter(type=ValidatedStatistics, optional=True),
    }
    OUTPUTS = {
        standard_component_specs.ANOMALIES_KEY: component_spec.ChannelParameter(
            type=standard_artifacts.ExampleAnomalies),
    }


class DataValidator(base_component.BaseComponent):
    SPEC_CLASS = DataValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, statistics: channel.BaseChannel, schema: channel.BaseChannel,
                 baseline_statistics: channel.BaseChannel | None = None):
        super().__init__(spec=DataValidatorSpec(
            statistics=statistics, schema=schema, baseline_statistics=baseline_statistics,
            anomalies=channel.Channel(type=standard_artifacts.ExampleAnomalies)))
