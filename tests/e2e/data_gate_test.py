"""Data that passes the CSV contract but breaks the curated schema stops the run before Transform."""

from __future__ import annotations

import json
import os

import yaml

from pipeline import cli, local_runner


def test_schema_anomaly_stops_the_run_and_names_the_feature(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "items.csv").write_text("item_id,title,description,categories\ni1,Rocket,To orbit,space\n"
                                    "i2,Bread,Oven,cooking\n")
    # Ratings of 7 and 9 are numbers (the contract holds) but outside the schema's 0-5 domain.
    (data / "events.csv").write_text("user_id,item_id,timestamp,clicked,rating\n" + "".join(
        f"u{i % 5},i{1 + i % 2},{i},1,{7 if i % 3 else 9}\n" for i in range(40)))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"),
                                      "data": {"source": "csv", "path": str(data)}}))
    assert cli.main(["run", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "DataAnomaliesError" in err and "feature 'rating'" in err
    with open(tmp_path / "out" / local_runner.SUMMARY_FILE, encoding="utf-8") as handle:
        summary = json.load(handle)
    assert summary["status"] == "failed" and "feature 'rating'" in summary["error"]
    assert not os.path.exists(tmp_path / "out" / "pipeline_root" / "Transform")
    assert not os.path.exists(tmp_path / "out" / "serving")
    page = (tmp_path / "out" / "report.html").read_text()  # the report shows how far the run got, and why
    assert "ExampleValidator found anomalies" in page and "rating" in page
