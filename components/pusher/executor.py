"""A Pusher that never pushes the same model twice.

A rerun of an unchanged pipeline gets its Trainer output from the cache, but the Evaluator runs again (its
baseline, the latest blessed model, is now that very model) and blesses it again. TFX's Pusher would then
copy it to a new version, and TF Serving would reload an identical model. This executor records which model
each version came from and, when the newest version already holds the model to push, reports that version as
the push instead of writing a copy.
"""

from __future__ import annotations

import os
from typing import Any

from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

SOURCE_FILE = "mtrec_source_model.txt"  # in each version directory: the model artifact it was copied from


def _newest_version(base_directory: str) -> str | None:
    if not os.path.isdir(base_directory):
        return None
    versions = [name for name in os.listdir(base_directory) if name.isdigit()]
    return max(versions, key=int) if versions else None


class Executor(pusher_executor.Executor):
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        base_directory = destination.filesystem.base_directory
        if self.CheckBlessing(input_dict):
            model_path = self.GetModelPath(input_dict)
            newest = _newest_version(base_directory)
            source = os.path.join(base_directory, newest, SOURCE_FILE) if newest else ""
            if newest and os.path.isfile(source) and io_utils.read_string_file(source) == model_path:
                io_utils.copy_dir(model_path, model_push.uri)
                self._MarkPushed(model_push, pushed_destination=os.path.join(base_directory, newest),
                                 pushed_version=newest)
                return
        super().Do(input_dict, output_dict, exec_properties)
        pushed_to = model_push.get_string_custom_property("pushed_destination")
        if model_push.get_int_custom_property("pushed") and pushed_to:
            io_utils.write_string_file(os.path.join(pushed_to, SOURCE_FILE), self.GetModelPath(input_dict))
