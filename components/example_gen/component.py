"""EventsExampleGen: joins behaviour events with item text and each event's user history, then splits.

It is a FileBasedExampleGen (so the driver fingerprints the input files and reruns when they change) whose
executor reads the CSV files of `input_base` and whose extra parameters are typed and recorded in ML Metadata.
"""

from __future__ import annotations

import json
from typing import Any

from tfx.components.example_gen import driver
from tfx.components.example_gen import utils as example_gen_utils
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import channel, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import io_utils

from components.example_gen import executor, input_contract


class EventsExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        executor.HISTORY_LENGTH_KEY: ExecutionParameter(type=int),
        executor.SPLIT_KEY: ExecutionParameter(type=str),
        executor.EVAL_FRACTION_KEY: ExecutionParameter(type=float),
        executor.SEED_KEY: ExecutionParameter(type=int),
        executor.LABEL_COLUMNS_KEY: ExecutionParameter(type=str),
        executor.REQUIRE_TEXT_KEY: ExecutionParameter(type=int),
        executor.FEATURES_KEY: ExecutionParameter(type=str),
        executor.WINDOW_CONFIG_KEY: ExecutionParameter(type=str),
        executor.WINDOW_KEY: ExecutionParameter(type=str, optional=True),
        executor.DATA_DAY_KEY: ExecutionParameter(type=str),
        executor.CODE_VERSION_KEY: ExecutionParameter(type=str),
    }


class WindowDriver(driver.FileBasedDriver):
    """TFX's file-based driver (a fingerprint of the input files, the span) for a window of daily partitions:
    it resolves the window now, so the execution, and with it the cache, is keyed on the days read and on
    their files' fingerprint: a new day reruns ExampleGen and everything after it, an unchanged window does not.
    The Examples artifact records the window's last day as its span."""

    def resolve_exec_properties(self, exec_properties: dict[str, Any], pipeline_info: Any, component_info: Any
                                ) -> dict[str, Any]:
        exec_properties = super().resolve_exec_properties(exec_properties, pipeline_info, component_info)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        resolved = executor.resolved_window(input_base, exec_properties)
        if resolved is not None:
            exec_properties[executor.WINDOW_KEY] = resolved.to_json()
            exec_properties[example_gen_utils.SPAN_PROPERTY_NAME] = resolved.span
            exec_properties[example_gen_utils.FINGERPRINT_PROPERTY_NAME] += "".join(
                f"\n{io_utils.generate_fingerprint(day, path)}"
                for day, path in zip(resolved.days, resolved.files(input_base), strict=True))
        return exec_properties


class EventsExampleGen(base_beam_component.BaseBeamComponent):
    """Reads `events.csv` and `items.csv` from `input_base` and writes train/eval tf.Examples.

    Args:
        input_base: str. Directory holding events.csv and items.csv (the CSV contract of docs/data-contract.md).
        history_length: int. Number of the user's previous item ids attached to each event.
        split: str. "time" puts each user's latest events into eval; "random" draws eval events at random.
        eval_fraction: float. Share of each user's events (time) or of all events (random) that go to eval.
        seed: int. Seed of the random split.
        label_columns: dict. The label columns of events.csv -> what their values must be (features.BINARY_LABEL,
            NUMERIC_LABEL or NON_NEGATIVE_LABEL); rows that break it are quarantined. Default: clicked and rating.
        require_text: bool. Whether an item needs a title (the text tower is on); without, items may have no text.
        features: list of dict. The declared features (dataclasses.asdict of models.features.Feature): their
            values join each example; rows where one is malformed are quarantined.
        window_config: str. The window of daily partitions to read (window.WindowConfig as JSON: `input_base`
            holds events/YYYY-MM-DD.csv); "" reads `input_base`/events.csv.
        data_day: str or RuntimeParameter. The window's last day, YYYY-MM-DD; "" for the latest day there is.
        code_version: str. Fingerprint of the code that writes the examples (see pipeline.code_version).
    """

    SPEC_CLASS = EventsExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = WindowDriver

    def __init__(self, input_base: str, history_length: int = 20, split: str = "time",
                 eval_fraction: float = 0.2, seed: int = 42, label_columns: dict[str, str] | None = None,
                 require_text: bool = True, features: list[dict] | None = None, window_config: str = "",
                 data_day: Any = "", code_version: str = ""):
        if split not in executor.SPLIT_MODES:
            raise ValueError(f"`split` should be one of {executor.SPLIT_MODES}. Received: `split` = {split!r}")
        if not 0.0 < eval_fraction < 1.0:
            raise ValueError(f"`eval_fraction` should be in (0, 1). Received: `eval_fraction` = {eval_fraction}")
        input_config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern="*.csv")])
        # The split is made by the executor (per user, by time, or seeded); these names fix the output splits.
        output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name=executor.TRAIN, hash_buckets=1),
            example_gen_pb2.SplitConfig.Split(name=executor.EVAL, hash_buckets=1),
        ]))
        example_gen_utils.generate_output_split_names(input_config, output_config)
        spec = EventsExampleGenSpec(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            history_length=history_length,
            split=split,
            eval_fraction=eval_fraction,
            seed=seed,
            label_columns=json.dumps(label_columns or input_contract.DEFAULT_LABELS, sort_keys=True),
            require_text=int(require_text),
            features=json.dumps(features or []),
            window_config=window_config,
            data_day=data_day,
            code_version=code_version,
            examples=channel.Channel(type=standard_artifacts.Examples),
        )
        super().__init__(spec=spec)
