"""Ranking metrics of a scored set of events, as numpy functions: weighted AUC and GAUC.

The Evaluator (pipeline.tfma_metrics) and the benchmarks compute them with these same functions.
"""

from __future__ import annotations

import numpy as np


def auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Area under the ROC curve: the weighted share of (positive, negative) pairs that the scores order right,
    a tie counting half. NaN when either class has no weight."""
    labels = np.asarray(labels, np.float64).reshape(-1) > 0
    scores = np.asarray(scores, np.float64).reshape(-1)
    weights = np.ones_like(scores) if weights is None else np.broadcast_to(
        np.asarray(weights, np.float64).reshape(-1), scores.shape)
    positive, negative = weights * labels, weights * ~labels
    if positive.sum() <= 0 or negative.sum() <= 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # Tied scores form one group: each of its positives beats the negatives below the group and ties with its own.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    group_positive = np.add.reduceat(positive[order], starts)
    group_negative = np.add.reduceat(negative[order], starts)
    negative_below = np.cumsum(group_negative) - group_negative
    correct = np.sum(group_positive * (negative_below + 0.5 * group_negative))
    return float(correct / (positive.sum() * negative.sum()))


def gauc(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Group AUC: each group's (user's) AUC, averaged with the group's impressions (summed weights) as its weight.
    Groups whose events are all positive or all negative have no AUC and are left out; NaN when none has one."""
    groups = np.asarray(groups).reshape(-1)
    labels, scores = np.asarray(labels).reshape(-1), np.asarray(scores).reshape(-1)
    weights = np.ones(len(scores)) if weights is None else np.broadcast_to(
        np.asarray(weights, np.float64).reshape(-1), scores.shape)
    accumulator = GaucAccumulator()
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.r_[True, groups[order][1:] != groups[order][:-1], True])
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        rows = order[start:end]
        accumulator.add(labels[rows], scores[rows], weights[rows])
    return accumulator.value()


class GaucAccumulator:
    """GAUC over groups that arrive one at a time (a TFMA combiner's queries): the impression-weighted sum of the
    groups' AUCs and the impressions of the groups that have one."""

    def __init__(self) -> None:
        self.weighted_auc = 0.0
        self.impressions = 0.0

    def add(self, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> None:
        value = auc(labels, scores, weights)
        if not np.isnan(value):
            impressions = float(np.sum(weights))
            self.weighted_auc += impressions * value
            self.impressions += impressions

    def merge(self, other: GaucAccumulator) -> None:
        self.weighted_auc += other.weighted_auc
        self.impressions += other.impressions

    def value(self) -> float:
        return self.weighted_auc / self.impressions if self.impressions > 0 else float("nan")
