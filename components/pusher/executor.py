"""A Pusher that publishes atomically, checks what it published, and never pushes the same model twice.

TFX's Pusher copies the model file by file into the new version directory, so a server polling the directory
can meet a half-written version, and a push that dies half-way leaves one behind for good. This executor
publishes through `serving.versions.publish` (staging directory, manifest, rename): a version appears whole or
not at all, and a failed push leaves the previous version the newest.

A rerun of an unchanged pipeline gets its Trainer output from the cache, but the Evaluator runs again and
blesses it again. Copying it to a new version would make TF Serving reload an identical model, so when the
newest version already holds the model to push, and its manifest shows it intact, that version is reported as
the push. A newest version damaged since it was published is not trusted: the model is published anew.
"""

from __future__ import annotations

import os
from typing import Any

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.retrieval_evaluator.component import BLESSED_PROPERTY
from serving import versions

RETRIEVAL_EVALUATION_KEY = "retrieval_evaluation"  # the extra input of components.pusher.component.PusherSpec
SOURCE_FILE = "mtrec_source_model.txt"  # in each version directory: the model artifact it was copied from


def _already_published(base_directory: str, model_path: str) -> str | None:
    """The newest version, when it holds `model_path`'s model and is intact."""
    newest = versions.versions(base_directory)[-1:]
    if not newest:
        return None
    version_dir = os.path.join(base_directory, str(newest[0]))
    source = os.path.join(version_dir, SOURCE_FILE)
    if not os.path.isfile(source) or io_utils.read_string_file(source) != model_path:
        return None
    damage = versions.damage(version_dir)
    if damage:
        logging.warning("Version %s was damaged after it was published (%s); publishing the model again.",
                        newest[0], "; ".join(damage[:3]))
        return None
    return str(newest[0])


class Executor(pusher_executor.Executor):
    def CheckBlessing(self, input_dict: dict[str, list[types.Artifact]]) -> bool:
        """TFX's checks of the Evaluator's and the serving check's blessings, and the retrieval evaluation's."""
        if not super().CheckBlessing(input_dict):
            return False
        for evaluation in input_dict.get(RETRIEVAL_EVALUATION_KEY, []):
            if not evaluation.get_int_custom_property(BLESSED_PROPERTY):
                logging.info("Model was not blessed by the retrieval evaluation at %s", evaluation.uri)
                return False
        return True

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        base_directory = destination.filesystem.base_directory
        model_path = self.GetModelPath(input_dict)
        version = _already_published(base_directory, model_path) or versions.publish(
            model_path, base_directory, {SOURCE_FILE: model_path})
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=os.path.join(base_directory, version), pushed_version=version)
