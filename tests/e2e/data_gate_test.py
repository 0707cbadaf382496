"""The data gate stops a run before Transform, naming the file or feature and why: too many quarantined rows,
schema anomalies, drift from the last run whose data passed, and skew between train and eval."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from tfx import v1 as tfx
from tfx.orchestration.pipeline import RunOptions

from components.data_gate.component import DataAnomaliesError
from pipeline import cli, local_runner
from pipeline import config as config_lib
from pipeline.pipeline import DATA_GATE_ID

IN_PROCESS = {"direct_running_mode": "in_memory", "direct_num_workers": 1}  # worker start-up only costs time here
ITEMS = "item_id,title,description,categories\ni1,Rocket,To orbit,space\ni2,Bread,Oven,cooking\n"


def _write_data(directory, rating=lambda i: 4, clicked=lambda i: 1, bad_rows: str = "") -> str:
    """40 events of 5 users (8 each, timestamps 0-39 in order), with ratings and clicks by event number."""
    directory.mkdir(exist_ok=True)
    (directory / "items.csv").write_text(ITEMS)
    (directory / "events.csv").write_text("user_id,item_id,timestamp,clicked,rating\n" + "".join(
        f"u{i % 5},i{1 + i % 2},{i},{clicked(i)},{rating(i)}\n" for i in range(40)) + bad_rows)
    return str(directory)


def _run_data_stage(data_dir: str, output_dir, validation: dict | None = None) -> None:
    """Runs the pipeline's nodes up to and including the data gate (Transform and after are left out)."""
    config = config_lib.from_dict({"output_dir": str(output_dir), "data": {"source": "csv", "path": data_dir},
                                   "validation": validation or {}, "beam": IN_PROCESS})
    paths = local_runner.RunPaths(str(output_dir))
    pipeline = local_runner.build_pipeline(
        config, data_dir, paths.pipeline_root, paths.serving, local_runner.stage_schema(str(output_dir), config),
        tfx.orchestration.metadata.sqlite_metadata_connection_config(paths.metadata))
    tfx.orchestration.LocalDagRunner().run(pipeline, run_options=RunOptions(to_nodes=[DATA_GATE_ID]))


def test_schema_anomaly_stops_the_run_and_names_the_feature(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "items.csv").write_text("item_id,title,description,categories\ni1,Rocket,To orbit,space\n"
                                    "i2,Bread,Oven,cooking\n")
    # Ratings of 7 and 9 are numbers (the contract holds) but outside the schema's 0-5 domain.
    (data / "events.csv").write_text("user_id,item_id,timestamp,clicked,rating\n" + "".join(
        f"u{i % 5},i{1 + i % 2},{i},1,{7 if i % 3 else 9}\n" for i in range(40)))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"), "beam": IN_PROCESS,
                                      "data": {"source": "csv", "path": str(data)}}))
    assert cli.main(["run", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "DataAnomaliesError" in err and "feature 'rating'" in err
    with open(tmp_path / "out" / local_runner.SUMMARY_FILE, encoding="utf-8") as handle:
        summary = json.load(handle)
    assert summary["status"] == "failed" and "feature 'rating'" in summary["error"]
    assert summary["failed_checks"] == ["data gate"]
    assert summary["input"]["quarantine"]["events.csv"] == {"rows": 40, "quarantined": 0, "by_column": {}}
    assert not os.path.exists(tmp_path / "out" / "pipeline_root" / "Transform")
    assert not os.path.exists(tmp_path / "out" / "serving")
    page = (tmp_path / "out" / "report.html").read_text()  # the report shows how far the run got, and why
    assert "DataValidator found anomalies" in page and "rating" in page


def test_too_many_quarantined_rows_stop_the_run(tmp_path):
    bad = "u1,i1,soon,1,4\nu2,i9,50,1,4\nu3,i1,51,1,nan\n"  # 3 of 43 rows: 7%
    data = _write_data(tmp_path / "data", bad_rows=bad)
    with pytest.raises(DataAnomaliesError, match=r"events\.csv: 3 of 43 rows quarantined \(7\.0%, above "
                                                 r"validation\.max_bad_fraction 5\.0%; by column: item_id: 1, "
                                                 r"rating: 1, timestamp: 1\); the rows and reasons are in .*"
                                                 r"quarantine\.jsonl"):
        _run_data_stage(data, tmp_path / "out")
    _run_data_stage(data, tmp_path / "out", {"max_bad_fraction": 0.1})  # a higher limit lets it through


def test_drift_from_the_last_validated_run_stops_the_run_until_the_data_is_back(tmp_path):
    high = _write_data(tmp_path / "high", rating=lambda i: 4 + i % 2)
    low = _write_data(tmp_path / "low", rating=lambda i: 1 + i % 2)
    _run_data_stage(high, tmp_path / "out")  # the first run has no baseline: nothing to drift from
    for _ in range(2):  # a failed run never becomes the baseline, so running it again fails again
        with pytest.raises(DataAnomaliesError, match=r"split 'train', feature 'rating': High approximate Jensen-"
                                                     r"Shannon divergence between current and previous"):
            _run_data_stage(low, tmp_path / "out")
    _run_data_stage(high, tmp_path / "out")
    # A looser threshold accepts the shift, and the shifted data becomes the baseline.
    _run_data_stage(low, tmp_path / "out", {"drift": {"rating": 1.0}})
    _run_data_stage(low, tmp_path / "out")


def test_skew_between_train_and_eval_stops_the_run(tmp_path):
    # Every user's latest events (the eval split of the time split) are clicks; the earlier ones are not.
    data = _write_data(tmp_path / "data", clicked=lambda i: int(i >= 30))
    with pytest.raises(DataAnomaliesError, match=r"split 'train', feature 'clicked': High Linfty distance between "
                                                 r"training and serving"):
        _run_data_stage(data, tmp_path / "out")
    _run_data_stage(data, tmp_path / "out", {"skew": {"rating": 0.2}})  # clicked no longer watched
