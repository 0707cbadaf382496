"""Which check kept a model from being pushed, or stopped a run, as the summary names it."""

from __future__ import annotations

from components.data_gate.component import DataAnomaliesError
from pipeline import run_summary


def test_failed_checks_name_each_gate_that_failed():
    assert run_summary.failed_checks({"failed_thresholds": [], "serving_check": {"passed": True}}) == []
    absolute = "click/auc: 0.7000 fails lower_bound { value: 0.99 }"
    change = "click/auc (change vs baseline): -0.0500 fails upper_bound { value: -0.02 }"
    assert run_summary.failed_checks({"failed_thresholds": [absolute]}) == ["evaluator thresholds"]
    assert run_summary.failed_checks({"failed_thresholds": [change]}) == [
        "change thresholds against the latest blessed model"]
    assert run_summary.failed_checks({"failed_thresholds": [absolute, change],
                                      "serving_check": {"passed": False, "disallowed_ops": ["X"]}}) == [
        "evaluator thresholds", "change thresholds against the latest blessed model", "serving check"]
    refused = {"blessed": False, "failures": ["Recall@10 0.0100 is below 1.1x the popularity baseline's 0.2000"]}
    assert run_summary.failed_checks({"failed_thresholds": [], "retrieval": refused}) == ["retrieval gate"]
    assert run_summary.failed_checks({"failed_thresholds": [], "retrieval": {"blessed": True, "failures": []}}) == []


def test_a_run_stopped_by_the_data_gate_says_so():
    error = RuntimeError(f"{DataAnomaliesError.__name__}: the data is not fit to train on:\n  events.csv: ...")
    assert run_summary.failed_checks_of_error(error) == ["data gate"]
    assert run_summary.failed_checks_of_error(RuntimeError("Trainer: out of memory")) == []
