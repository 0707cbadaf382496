"""The main job as `make run` does it: default configuration, pretrained MiniLM text tower (slow on a CPU)."""

from __future__ import annotations

import json

import pytest
import yaml

from pipeline import cli, local_runner


@pytest.mark.slow
def test_default_run_with_pretrained_text_tower_is_blessed_and_pushed(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out")}))
    assert cli.main(["run", "--config", str(config)]) == 0
    with open(tmp_path / "out" / local_runner.SUMMARY_FILE, encoding="utf-8") as handle:
        summary = json.load(handle)
    assert summary["metrics"]["click"]["auc"] > 0.65
    assert summary["metrics"]["rating"]["root_mean_squared_error"] < 1.2
    assert summary["blessed"] is True and summary["pushed"] is True
