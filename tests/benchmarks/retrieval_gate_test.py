"""The retrieval-gate benchmark's targets and table, on hand-built figures (the runs themselves take minutes)."""

from __future__ import annotations

from benchmarks import retrieval_gate


def _figures(gate: float, evaluator: float, pipeline: float) -> dict:
    overall = {"examples": 100, "model": {"recall@10": 0.2}, "popularity": {"recall@10": 0.05}}
    return {"items": 300, "events": 12_000, "retrieval_eval_events": 100, "retrieval_evaluator_seconds": gate,
            "evaluator_seconds": evaluator, "evaluator_ratio": gate / evaluator, "pipeline_seconds": pipeline,
            "pipeline_share": gate / pipeline, "retrieval_evaluator_peak_memory_mb": 900, "overall": overall}


def test_targets_judge_the_worst_case_and_report_a_miss():
    cheap = _figures(5.0, 20.0, 120.0)
    targets = retrieval_gate.targets({"default": cheap, "100k items": _figures(30.0, 60.0, 600.0)})
    assert all(target["met"] for target in targets.values())
    targets = retrieval_gate.targets({"default": cheap, "100k items": _figures(90.0, 60.0, 600.0)})
    ratio, share = targets.values()
    assert not ratio["met"] and ratio["value"] == 1.5
    assert not share["met"] and share["value"] == 0.15


def test_markdown_shows_every_case_and_each_target():
    report = {"machine": "test", "cases": {"default": _figures(5.0, 20.0, 120.0)},
              "targets": retrieval_gate.targets({"default": _figures(5.0, 20.0, 120.0)})}
    page = retrieval_gate.markdown(report)
    assert "| default | 300 | 12,000 | 100 | 5.0 | 20.0 | 0.25 | 120 | 4.2% | 900 | 0.200 / 0.050 |" in page
    assert page.count(": met (") == 2


def test_the_cases_are_the_default_run_and_a_100k_item_catalogue():
    cases = retrieval_gate.cases()
    assert cases["default"] == retrieval_gate.config_lib.RunConfig()
    assert cases["100k items"].data.synthetic.num_items == 100_000
