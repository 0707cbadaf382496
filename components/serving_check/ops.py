"""Which ops a SavedModel needs, and whether TF Serving can run them.

TF Serving registers the core TensorFlow ops and the TF Text ops it bundles, which come from an older TF Text
(see docs/serving.md, "TF Serving compatibility check"). A model whose graph needs any other op fails to load there with
"Op type not registered", so this check runs before Pusher and fails naming the ops.
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

# TF Text ops that TF Serving's bundled TF Text registers and that mtrec's graphs may use; measured, not
# guessed. Deliberately short: a TF Text op that is not listed fails the check, the safe direction.
TF_SERVING_TEXT_OPS = frozenset({"CaseFoldUTF8", "NormalizeUTF8", "RegexSplitWithOffsets",
                                 "WordpieceTokenizeWithOffsets"})


@dataclasses.dataclass(frozen=True)
class ServingCheckReport:
    model_dir: str
    ops: tuple[str, ...]
    disallowed_ops: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.disallowed_ops

    def describe(self) -> str:
        if self.passed:
            return f"{self.model_dir}: all {len(self.ops)} ops are in TF Serving's op set"
        return (f"{self.model_dir}: {len(self.disallowed_ops)} of {len(self.ops)} ops are not in TF Serving's op "
                f"set: {', '.join(self.disallowed_ops)}")


def list_ops(model_dir: str) -> set[str]:
    """Every op type in the SavedModel's graphs, functions included."""
    path = os.path.join(model_dir, "saved_model.pb")
    if not tf.io.gfile.exists(path):  # tf.io.gfile: the model artifact may be on gs:// (Kubeflow)
        raise FileNotFoundError(f"{model_dir}: no saved_model.pb (not a SavedModel directory)")
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as handle:
        saved_model.ParseFromString(handle.read())
    ops: set[str] = set()
    for meta_graph in saved_model.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def check(model_dir: str) -> ServingCheckReport:
    ops = list_ops(model_dir)
    allowed = set(dir(tf.raw_ops)) | TF_SERVING_TEXT_OPS
    return ServingCheckReport(model_dir, tuple(sorted(ops)), tuple(sorted(ops - allowed)))
