"""Full-catalogue retrieval metrics, per slice, and the gate on them: pure NumPy, so they are checked by hand.

Each eval event has one target item; its rank is its 1-based position in the list retrieved for the event's user
(0: not among the `depth` retrieved, the largest cutoff). From the ranks: Recall@K (the share of events whose
item is in the top K; with one target per event it equals the hit rate), NDCG@K (1 / log2(rank + 1) for a hit,
0 otherwise) and MRR (1 / rank within the retrieved depth, 0 beyond it).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

OVERALL = "overall"
MODEL, POPULARITY, BASELINE = "model", "popularity", "baseline"  # the figures' sources


def ranks_in(retrieved: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(B, K) retrieved ids, (B,) target ids -> (B,) 1-based rank of each target, 0 where it is not retrieved."""
    hits = retrieved == targets[:, None]
    return np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)


def figures(ranks: np.ndarray, cutoffs: Sequence[int]) -> dict[str, float]:
    """Recall@K and NDCG@K for each cutoff, and MRR, of `ranks` (see the module docstring)."""
    ranks = np.asarray(ranks, np.float64)
    if not len(ranks):
        return {}
    result = {}
    for k in cutoffs:
        hit = (ranks > 0) & (ranks <= k)
        result[f"recall@{k}"] = float(hit.mean())
        result[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(np.maximum(ranks, 1) + 1), 0.0).mean())
    result["mrr"] = float(np.where(ranks > 0, 1.0 / np.maximum(ranks, 1), 0.0).mean())
    return result


def popularity_order(item_ids: Iterable[str]) -> list[str]:
    """The items of the train split's positive events, most frequent first (ties by id, so runs agree)."""
    counts = collections.Counter(item_ids)
    return sorted(counts, key=lambda item: (-counts[item], item))


def popularity_ranks(order: Sequence[str], targets: Sequence[str], histories: Sequence[Sequence[str]],
                     exclude_history: bool, depth: int) -> np.ndarray:
    """The ranks the popularity baseline gives each target: every user gets `order`, without the items of their
    history when `exclude_history` (as `retrieve` leaves them out), cut at `depth`."""
    position = {item: i for i, item in enumerate(order)}
    ranks = np.zeros(len(targets), np.int64)
    for i, (target, history) in enumerate(zip(targets, histories, strict=True)):
        seen = set(history) if exclude_history else set()
        if target not in position or target in seen:
            continue
        rank = position[target] + 1 - sum(1 for item in seen if position.get(item, len(order)) < position[target])
        ranks[i] = rank if rank <= depth else 0
    return ranks


def slice_masks(slice_values: dict[str, Sequence[str]]) -> dict[str, np.ndarray]:
    """"overall" plus one boolean mask per "feature=value" (e.g. item_popularity=cold), for each slice feature."""
    sizes = {len(values) for values in slice_values.values()}
    masks = {OVERALL: np.ones(sizes.pop() if sizes else 0, bool)}
    for feature, values in slice_values.items():
        values = np.asarray(values)
        for value in sorted(set(values.tolist())):
            masks[f"{feature}={value}"] = values == value
    return masks


def by_slice(ranks: dict[str, np.ndarray], masks: dict[str, np.ndarray], cutoffs: Sequence[int]
             ) -> dict[str, dict[str, object]]:
    """{slice: {"examples": n, source: figures}} for each source's ranks (model, popularity, baseline)."""
    return {name: {"examples": int(mask.sum()),
                   **{source: figures(source_ranks[mask], cutoffs) for source, source_ranks in ranks.items()}}
            for name, mask in masks.items()}


@dataclasses.dataclass(frozen=True)
class Gate:
    """What the pushed model's retrieval must do, on the overall slice at `cutoff`: reach `min_lift` times the
    popularity baseline's recall, and lose at most `max_recall_decrease` (absolute) against the latest blessed
    model, when there is one."""

    cutoff: int
    min_lift: float
    max_recall_decrease: float

    def failures(self, overall: dict[str, dict[str, float]]) -> list[str]:
        """One line per failed check; none when the model passes."""
        metric = f"recall@{self.cutoff}"
        name = f"Recall@{self.cutoff}"
        model = overall[MODEL][metric]
        failed = []
        popular = overall[POPULARITY].get(metric, 0.0)
        if model < self.min_lift * popular or model == 0.0:
            failed.append(f"{name} {model:.4f} is below {self.min_lift:g}x the popularity baseline's {popular:.4f}")
        if overall.get(BASELINE):
            blessed = overall[BASELINE][metric]
            if model < blessed - self.max_recall_decrease:
                failed.append(f"{name} {model:.4f} dropped by more than {self.max_recall_decrease:g} from the latest "
                              f"blessed model's {blessed:.4f}")
        return failed
