"""ServingCheck: blesses a model for push only when TF Serving can load every op of its graphs.

It writes an InfraBlessing, the artifact Pusher already gates on, with the report beside it.
"""

import json
import os

from tfx import v1 as tfx
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from components.serving_check import ops

REPORT_FILE = "serving_check.json"


@tfx.dsl.components.component
def ServingCheck(
    model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    blessing: tfx.dsl.components.OutputArtifact[standard_artifacts.InfraBlessing],
) -> None:
    report = ops.check(path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model)))
    with fileio.open(os.path.join(blessing.uri, REPORT_FILE), "w") as handle:  # on gs:// under Kubeflow
        json.dump({"passed": report.passed, "disallowed_ops": list(report.disallowed_ops),
                   "ops": list(report.ops)}, handle, indent=2)
    blessing.set_int_custom_property("blessed", int(report.passed))
