"""The compiled Kubeflow spec runs: every task's container command, with the ExecutorInput a KFP backend would
build from the spec, runs as a subprocess in dependency order on local paths (tests/kfp_local.py), and the run
ends with a blessed, pushed model. No cluster exists here; this is what the pods would do."""

from __future__ import annotations

import os

import pytest
import yaml

from pipeline import cli
from pipeline.data import synthetic
from tests import kfp_local
from tests.e2e.local_e2e_test import small_run_config

SIGNATURES = {"serving_default", "rank", "retrieve", "user_embedding", "item_embedding"}


def _store_with_a_blessed_model() -> list[dict]:
    model = {"name": "local/run1/Trainer/model", "uri": "/root/run1/Trainer/model", "metadata": {},
             "schemaTitle": "tfx.Model"}
    unblessed = {"name": "local/run1/Evaluator/blessing", "uri": "/b1", "schemaTitle": "tfx.ModelBlessing",
                 "metadata": {"blessed": 0.0, "current_model_id": "local/run0/Trainer/model"}}
    blessed = {"name": "local/run1/Evaluator/blessing2", "uri": "/b2", "schemaTitle": "tfx.ModelBlessing",
               "metadata": {"blessed": 1.0, "current_model_id": model["name"]}}
    return [model, unblessed, blessed]


def test_resolver_queries_select_the_latest_blessed_model():
    blessing_query = 'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'
    model_query = ("schema_title=\"tfx.Model\" AND state=LIVE AND "
                   "name=\"{{$.inputs.artifacts['input'].metadata['current_model_id']}}\"")
    store = _store_with_a_blessed_model()
    blessing = kfp_local._resolve({"outputArtifactQueries": {"model_blessing": {"filter": blessing_query}}},
                                  {}, store)["model_blessing"]
    assert [artifact["uri"] for artifact in blessing] == ["/b2"]
    model = kfp_local._resolve({"outputArtifactQueries": {"model": {"filter": model_query}}},
                               {"input": blessing}, store)["model"]
    assert [artifact["name"] for artifact in model] == ["local/run1/Trainer/model"]
    # No blessing resolved (a first run): the model query resolves to nothing.
    assert kfp_local._resolve({"outputArtifactQueries": {"model": {"filter": model_query}}},
                              {"input": []}, store) == {"model": []}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("kubeflow")
    config = small_run_config(str(root / "unused"))
    # Beam in process: each task is its own process already, and worker processes would import TF again.
    config["beam"] = {"direct_running_mode": "in_memory", "direct_num_workers": 1}
    data = str(root / "shared" / "data")
    synthetic.generate(data, synthetic.SyntheticConfig(**config.pop("data")["synthetic"]))
    config_path = root / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    spec = str(root / "pipeline.json")
    pipeline_root, serving = str(root / "shared" / "pipeline_root"), str(root / "shared" / "serving")
    assert cli.main(["compile", "kubeflow", "--image", "mtrec:local", "--config", str(config_path),
                     "--pipeline-root", pipeline_root, "--data-root", data, "--serving-dir", serving,
                     "--output", spec]) == 0
    work_dir = root / "pod"
    work_dir.mkdir()
    return kfp_local.run(spec, str(work_dir)), kfp_local.load(spec)[0], serving


def test_every_task_ran_after_its_dependencies(local_run):
    run, spec, _ = local_run
    assert sorted(run.order) == sorted(spec.root.dag.tasks)
    for position, name in enumerate(run.order):
        assert set(spec.root.dag.tasks[name].dependent_tasks) <= set(run.order[:position]), name


def test_first_run_has_no_baseline_and_the_model_is_blessed_and_pushed(local_run):
    from tensorflow.core.protobuf import saved_model_pb2

    run, _, serving = local_run
    # Nothing was blessed before this run: the resolvers found nothing and the Evaluator got no baseline.
    assert run.outputs["latest_blessed_model_resolver-model-resolver"] == {"model": []}
    assert "baseline_model" not in run.inputs["Evaluator"]["inputs"]["artifacts"]
    (blessing,) = run.outputs["Evaluator"]["blessing"]
    assert blessing["metadata"]["blessed"] == 1
    (model,) = run.outputs["Trainer"]["model"]
    assert blessing["metadata"]["current_model_id"] == model["name"]
    (retrieval,) = run.outputs["RetrievalEvaluator"]["evaluation"]
    assert retrieval["metadata"]["blessed"] == 1
    assert "baseline_model" not in run.inputs["RetrievalEvaluator"]["inputs"]["artifacts"]
    (infra_blessing,) = run.outputs["ServingCheck"]["blessing"]
    assert infra_blessing["metadata"]["blessed"] == 1
    (pushed,) = run.outputs["Pusher"]["pushed_model"]
    assert pushed["metadata"]["pushed"] == 1
    destination = pushed["metadata"]["pushed_destination"]
    assert os.path.dirname(destination) == serving and os.listdir(serving) == [os.path.basename(destination)]
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(destination, "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    assert SIGNATURES <= set(saved_model.meta_graphs[0].signature_def)
