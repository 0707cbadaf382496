"""The scale benchmark: data sizes, ratios and targets by hand, and a whole run at tiny sizes."""

from __future__ import annotations

import json
import os

import pytest

from benchmarks import scale
from pipeline import cli


def test_the_catalogue_grows_from_10k_items_at_100k_events_to_200k_at_5m():
    assert scale.catalogue_size(100_000) == 10_000
    assert scale.catalogue_size(5_000_000) == 200_000
    # A power law: ten times the events multiply the items by 20 ** (1 / log10(50)) = 5.8314.
    assert scale.catalogue_size(1_000_000) == 58_314
    config = scale.data_config(1_000_000)
    assert (config.num_users, config.num_items, config.events_per_user) == (33_333, 58_314, 30)
    # The control: the events of 5M over the users and items of 100k.
    control = scale.data_config(5_000_000, vocabulary_of=100_000)
    assert (control.num_users, control.num_items, control.events_per_user) == (3_333, 10_000, 1_500)


def _size(events: int, data_seconds: float, data_mb: float, train_seconds: float, train_mb: float) -> dict:
    return {"events": events,
            "example_gen_transform": {"seconds": data_seconds, "events_per_second": events / data_seconds,
                                      "peak_memory_mb": data_mb},
            "training": {"seconds": train_seconds, "events_per_second": events / train_seconds,
                         "peak_memory_mb": train_mb}}


def test_ratios_marginal_costs_and_targets_by_hand():
    sizes = [_size(1000, 10.0, 1000.0, 4.0, 2000.0), _size(2000, 20.0, 1100.0, 7.0, 2000.0),
             _size(4000, 50.0, 1300.0, 12.0, 2100.0)]
    control = _size(4000, 40.0, 1050.0, 12.0, 2000.0)
    scale.add_ratios(sizes, control)
    data, train = sizes[2]["example_gen_transform"], sizes[2]["training"]
    # Data: 100, 100, 80 events/s; memory 1000, 1100, 1300 MB.
    assert [s["example_gen_transform"]["events_per_second_ratio"] for s in sizes] == [1.0, 1.0, 0.8]
    assert [s["example_gen_transform"]["peak_memory_ratio"] for s in sizes] == [1.0, 1.1, 1.3]
    # The 2000 events added from 2000 to 4000 took 50 - 20 = 30 s: 15,000 s per million.
    assert sizes[1]["example_gen_transform"]["marginal_seconds_per_million_events"] == 10_000.0
    assert data["marginal_seconds_per_million_events"] == 15_000.0
    # Training: 250, 285.7, 333.3 events/s; memory 2000, 2000, 2100 MB.
    assert train["events_per_second_ratio"] == pytest.approx(1.333, abs=1e-3)
    assert train["peak_memory_ratio"] == 1.05
    assert "marginal_seconds_per_million_events" not in sizes[0]["training"]
    assert control["example_gen_transform"]["peak_memory_ratio"] == 1.05
    assert control["example_gen_transform"]["events_per_second_ratio"] == 1.0
    assert "marginal_seconds_per_million_events" not in control["training"]

    targets = scale.targets(sizes, control)
    assert targets["ExampleGen + Transform: events/s >= 0.8x the smallest size's"] == {"worst_ratio": 0.8,
                                                                                        "met": True}
    # (1300 - 1000) MB over 3000 events: 100,000 MB per million.
    growing = "peak memory <= 1.25x the smallest size's, users and items growing with the log"
    assert targets[f"ExampleGen + Transform: {growing}"] == {
        "worst_ratio": 1.3, "growth_mb_per_million_events": 100_000.0, "met": False}
    assert targets["training epoch: events/s >= 0.8x the smallest size's"]["met"] is True
    assert targets[f"training epoch: {growing}"]["met"] is True
    # The control: (1050 - 1000) MB over 3000 events.
    fixed = "peak memory <= 1.25x the smallest size's at 4,000 events over the smallest size's users and items"
    assert targets[f"ExampleGen + Transform: {fixed}"] == {
        "worst_ratio": 1.05, "growth_mb_per_million_events": 16_666.7, "met": True}
    assert targets[f"training epoch: {fixed}"]["met"] is True
    assert len(targets) == 6


def test_one_size_is_refused():
    with pytest.raises(ValueError, match="at least two different sizes"):
        scale.run((5000, 5000))


@pytest.mark.parametrize("sizes, message", [
    ("5000", "at least two"), ("1000,x", "not a whole number"), ("500,5000", "at least 1,000 events")])
def test_bad_sizes_on_the_command_line(sizes, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["benchmark", "scale", "--sizes", sizes])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_a_tiny_run_measures_every_stage_and_writes_the_results(tmp_path):
    """Two tiny sizes and the control through the real pipeline (about 4 minutes: every stage's cost here is its
    fixed cost)."""
    report = scale.run((1000, 2500), work_dir=str(tmp_path), log=lambda line: None)
    assert [size["events"] for size in report["sizes"]] == sorted(size["events"] for size in report["sizes"])
    smallest, control = report["sizes"][0], report["control"]
    assert (control["users"], control["items"]) == (smallest["users"], smallest["items"])
    assert control["events"] == pytest.approx(report["sizes"][-1]["events"], rel=0.1)
    for size in [*report["sizes"], control]:
        # Every generated event reached an example of one split.
        assert sum(size["examples"].values()) == size["events"]
        assert size["training"]["train_examples"] == size["examples"]["train"]
        assert {"EventsExampleGen", "StatisticsGen", "Transform"} <= set(size["components"])
        data = size["example_gen_transform"]
        assert data["seconds"] == pytest.approx(size["components"]["EventsExampleGen"]["seconds"]
                                                + size["components"]["Transform"]["seconds"], abs=0.11)
        assert data["events_per_second"] == pytest.approx(size["events"] / data["seconds"], abs=0.051)
        assert data["peak_memory_mb"] > 500  # TensorFlow alone
        assert 0 < size["training"]["first_step_seconds"] <= size["training"]["seconds"]
        assert size["training"]["peak_memory_mb"] > 500
        for stage in scale.STAGES:
            base = report["sizes"][0][stage]
            assert size[stage]["events_per_second_ratio"] == pytest.approx(
                size[stage]["events_per_second"] / base["events_per_second"], abs=1e-3)
            assert size[stage]["peak_memory_ratio"] == pytest.approx(
                size[stage]["peak_memory_mb"] / base["peak_memory_mb"], abs=1e-3)
    for name, target in report["targets"].items():
        if "events/s" in name:
            assert target["met"] == (target["worst_ratio"] >= scale.MIN_EVENTS_PER_SECOND_RATIO)
        else:
            assert target["met"] == (target["worst_ratio"] <= scale.MAX_PEAK_MEMORY_RATIO)
    assert report["settings"]["text_encoder"]["backbone"] == scale.TEXT_BACKBONE

    paths = scale.write(report, str(tmp_path / "results"))
    assert [os.path.basename(path) for path in paths] == ["scale.json", "scale.md", "scale.png"]
    assert json.loads(open(paths[0]).read()) == report
    table = open(paths[1]).read()
    for size in report["sizes"]:
        assert f"| {size['events']:,} | {size['items']:,} | {size['users']:,} |" in table
    assert f"| {control['events']:,} (control) | {control['items']:,} | {control['users']:,} |" in table
    assert os.path.getsize(paths[2]) > 10_000
