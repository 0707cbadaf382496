"""`mtrec benchmark reliability` tries every case and fault and reports honest figures (the run killed during
Trainer is left out here: tests/e2e/fault_injection_test.py covers it)."""

from __future__ import annotations

import json
import pathlib

import tensorflow as tf

from benchmarks import reliability


def test_every_case_is_handled_and_every_fault_survived(tmp_path, exported_model):
    _, model_dir = exported_model
    model = tf.saved_model.load(model_dir)
    report = reliability.run(dict(model.signatures), with_kill=False)
    tried = (len(reliability.FILE_CASES) + len(reliability.ROW_CASES) + len(reliability.CONFIG_CASES)
             + len(reliability.REQUEST_CASES))
    assert report["bad_input_cases_tried"] == tried
    assert [case["case"] for case in report["bad_input"] if not case["handled"]] == []
    assert report["bad_input_cases_handled"] == tried
    assert report["faults_injected"] == len(reliability.FAULTS)
    assert [fault["fault"] for fault in report["faults"] if not fault["survived"]] == []
    assert report["rows_lost"] == 0 and report["rows_read"] > 0
    paths = reliability.write(report, str(tmp_path))
    assert json.loads(pathlib.Path(paths[0]).read_text())["faults_survived"] == len(reliability.FAULTS)
    assert "Rows lost: 0" in pathlib.Path(paths[1]).read_text()


def test_an_unhandled_case_is_counted_as_such(tmp_path):
    accepted = reliability.FileCase("valid input", reliability.EVENTS, reliability.ITEMS, "never")
    assert reliability.try_file_case(accepted, str(tmp_path))["handled"] is False
    wrong = reliability.RowCase("wrong expectation", reliability.EVENTS + "u3,a,soon,1,4\n", reliability.ITEMS, ())
    result = reliability.try_row_case(wrong, str(tmp_path / "row"))
    assert result["handled"] is False and result["rows_lost"] == 0 and result["quarantined"] == 1
