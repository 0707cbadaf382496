"""AUC and GAUC against hand computation and against scikit-learn's AUC."""

from __future__ import annotations

import numpy as np
import pytest

from models import metrics


def test_auc_by_hand():
    assert metrics.auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert metrics.auc(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)  # a tie counts half
    assert np.isnan(metrics.auc(np.array([1, 1]), np.array([0.1, 0.2])))  # one class only


def test_weighted_auc_counts_each_pair_by_its_weights():
    labels, scores = np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.1, 0.5])
    # Weight 0 leaves a row out: rows 0, 1, 3 -> the positive beats both negatives.
    assert metrics.auc(labels, scores, np.array([1, 1, 0, 1])) == pytest.approx(1.0)
    # Pairs (pos, neg) with weight products: (0,1) 2*1 right, (0,3) 2*3 right, (2,1) 1*1 wrong, (2,3) 1*3 wrong.
    assert metrics.auc(labels, scores, np.array([2, 1, 1, 3])) == pytest.approx(8 / 12)


def test_auc_matches_scikit_learn_with_ties_and_weights():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels, scores = rng.integers(0, 2, 500), rng.integers(0, 20, 500) / 20  # many ties
    weights = rng.uniform(0.1, 3.0, 500)
    assert metrics.auc(labels, scores, weights) == pytest.approx(roc_auc_score(labels, scores, sample_weight=weights))


def test_gauc_averages_each_users_auc_by_impressions():
    groups = np.array(["a", "a", "a", "b", "b", "c", "c"])
    labels = np.array([1, 0, 0, 1, 0, 1, 1])
    scores = np.array([0.9, 0.5, 0.95, 0.2, 0.7, 0.3, 0.4])
    # a: the positive beats one of two negatives -> 0.5 over 3 impressions; b: 0.0 over 2; c: positives only, out.
    assert metrics.gauc(groups, labels, scores) == pytest.approx((3 * 0.5 + 2 * 0.0) / 5)
    # A global AUC would mix users: 0.5 here is not what GAUC says.
    assert metrics.auc(labels, scores) != pytest.approx(metrics.gauc(groups, labels, scores))
    assert np.isnan(metrics.gauc(np.array(["a"]), np.array([1]), np.array([0.5])))


def test_gauc_accumulators_merge_to_the_whole():
    first, second = metrics.GaucAccumulator(), metrics.GaucAccumulator()
    first.add(np.array([1, 0, 0]), np.array([0.9, 0.5, 0.95]), np.ones(3))
    second.add(np.array([1, 0]), np.array([0.2, 0.7]), np.ones(2))
    first.merge(second)
    assert first.value() == pytest.approx(1.5 / 5)
