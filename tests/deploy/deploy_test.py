"""deploy/: the TF Serving configs parse with TF Serving's own protos, and the manifests agree with them."""

from __future__ import annotations

import os
import re

import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import DEFAULT_MODEL_NAME

DEPLOY = os.path.join(os.path.dirname(__file__), "..", "..", "deploy")


def _read(name: str) -> str:
    with open(os.path.join(DEPLOY, name), encoding="utf-8") as handle:
        return handle.read()


def test_model_config_serves_mtrec_latest_version():
    config = text_format.Parse(_read("models.config"), model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.name == DEFAULT_MODEL_NAME and model.base_path == "/models/mtrec"
    assert model.model_version_policy.latest.num_versions == 1


def test_batching_config_pads_variable_length_history():
    """BatchingParameters' proto is not in tensorflow-serving-api, so its fields are read as text."""
    text = re.sub(r"#.*", "", _read("batching.config"))
    fields = dict(re.findall(r"(\w+)\s*(?:\{\s*value:\s*|:\s*)(\w+)", text))
    assert fields == {"max_batch_size": "128", "batch_timeout_micros": "2000", "max_enqueued_batches": "100",
                      "num_batch_threads": "4", "pad_variable_length_inputs": "true"}


def test_manifests_mount_the_configs_they_name():
    deployment = yaml.safe_load(_read("kubernetes/deployment.yaml"))
    kustomization = yaml.safe_load(_read("kustomization.yaml"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    generated = kustomization["configMapGenerator"][0]
    assert {f"--model_config_file=/config/{generated['files'][0]}",
            f"--batching_parameters_file=/config/{generated['files'][1]}"} <= set(container["args"])
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == generated["name"]
    compose = yaml.safe_load(_read("docker-compose.yaml"))["services"]["tf-serving"]
    assert compose["image"] == container["image"]
