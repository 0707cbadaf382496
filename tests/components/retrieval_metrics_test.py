"""Retrieval metrics, the popularity baseline, the slices and the gate, against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.retrieval_evaluator import metrics


def test_ranks_are_one_based_and_zero_when_not_retrieved():
    retrieved = np.array([["a", "b", "c"], ["c", "a", "b"], ["b", "c", "d"]], object)
    assert metrics.ranks_in(retrieved, np.array(["a", "b", "a"], object)).tolist() == [1, 3, 0]


def test_figures_match_hand_computation():
    # Ranks 1, 3, 12 and a miss; cutoffs 2 and 10.
    result = metrics.figures(np.array([1, 3, 12, 0]), [2, 10])
    assert result["recall@2"] == pytest.approx(1 / 4)
    assert result["recall@10"] == pytest.approx(2 / 4)
    assert result["ndcg@2"] == pytest.approx((1 / math.log2(2)) / 4)
    assert result["ndcg@10"] == pytest.approx((1 / math.log2(2) + 1 / math.log2(4)) / 4)
    assert result["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 12) / 4)
    assert metrics.figures(np.array([], np.int64), [10]) == {}


def test_popularity_order_counts_and_breaks_ties_by_id():
    assert metrics.popularity_order(["b", "a", "c", "b", "c", "d"]) == ["b", "c", "a", "d"]


def test_popularity_ranks_leave_out_the_history_as_retrieve_does():
    order = ["p1", "p2", "p3", "p4", "p5"]
    targets = ["p3", "p3", "p2", "new", "p5"]
    histories = [[], ["p1"], ["p2"], [], ["p9", "p1", "p2"]]
    # p3 third; p3 second once p1 is left out; p2 is in the history (a miss); never seen; p5 fifth - 2 = third.
    assert metrics.popularity_ranks(order, targets, histories, True, depth=5).tolist() == [3, 2, 0, 0, 3]
    assert metrics.popularity_ranks(order, targets, histories, False, depth=5).tolist() == [3, 3, 2, 0, 5]
    assert metrics.popularity_ranks(order, targets, histories, False, depth=2).tolist() == [0, 0, 2, 0, 0]


def test_slices_split_a_tiny_hand_built_eval_set():
    ranks = {metrics.MODEL: np.array([1, 0, 2, 5]), metrics.POPULARITY: np.array([0, 0, 1, 1])}
    masks = metrics.slice_masks({"item_popularity": ["cold", "popular", "cold", "popular"],
                                 "user_activity": ["new", "new", "heavy", "heavy"]})
    assert sorted(masks) == ["item_popularity=cold", "item_popularity=popular", "overall", "user_activity=heavy",
                             "user_activity=new"]
    result = metrics.by_slice(ranks, masks, [2])
    assert result["overall"]["examples"] == 4
    assert result["overall"][metrics.MODEL]["recall@2"] == pytest.approx(0.5)
    assert result["item_popularity=cold"][metrics.MODEL]["recall@2"] == pytest.approx(1.0)
    assert result["item_popularity=cold"][metrics.POPULARITY]["recall@2"] == pytest.approx(0.5)
    assert result["item_popularity=popular"][metrics.MODEL]["recall@2"] == pytest.approx(0.0)
    assert result["user_activity=new"][metrics.MODEL]["mrr"] == pytest.approx(0.5)
    assert result["user_activity=heavy"][metrics.POPULARITY]["mrr"] == pytest.approx(1.0)


def _overall(model: float, popularity: float, baseline: float | None = None) -> dict[str, dict[str, float]]:
    figures = {metrics.MODEL: {"recall@100": model}, metrics.POPULARITY: {"recall@100": popularity}}
    if baseline is not None:
        figures[metrics.BASELINE] = {"recall@100": baseline}
    return figures


def test_gate_passes_a_model_above_the_lift_and_near_the_blessed_one():
    gate = metrics.Gate(cutoff=100, min_lift=1.5, max_recall_decrease=0.02)
    assert gate.failures(_overall(0.16, 0.10)) == []
    assert gate.failures(_overall(0.16, 0.10, baseline=0.175)) == []


def test_gate_names_each_failed_check():
    gate = metrics.Gate(cutoff=100, min_lift=1.5, max_recall_decrease=0.02)
    (lift,) = gate.failures(_overall(0.14, 0.10))
    assert lift == "Recall@100 0.1400 is below 1.5x the popularity baseline's 0.1000"
    (drop,) = gate.failures(_overall(0.16, 0.10, baseline=0.19))
    assert drop == "Recall@100 0.1600 dropped by more than 0.02 from the latest blessed model's 0.1900"
    assert len(gate.failures(_overall(0.0, 0.0))) == 1  # a model that retrieves nothing never passes
