"""The transformer user tower with target attention through the whole pipeline: Transform's history keys, the
Trainer's catalogue, the Evaluator, the retrieval gate and the TF Serving op check all take it, and the pushed
model reads a user's history through the item tower."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the Transform graph's WordPiece ops)

from tests.e2e.local_e2e_test import run_to_summary, small_run_config


@pytest.mark.slow
def test_a_sequence_model_is_trained_gated_and_pushed(tmp_path):
    config = small_run_config(str(tmp_path / "out"))
    config["model"] = {"user_tower": "transformer", "target_attention": True}
    summary = run_to_summary(config, tmp_path)
    assert summary["blessed"] and summary["pushed"] and summary["failed_checks"] == [], summary
    retrieval = summary["retrieval"]["slices"]["overall"]
    assert retrieval["model"]["recall@10"] > retrieval["popularity"]["recall@10"]
    [version] = os.listdir(tmp_path / "out" / "serving")
    model = tf.saved_model.load(str(tmp_path / "out" / "serving" / version))
    with open(tmp_path / "out" / "data" / "events.csv", encoding="utf-8") as handle:
        events = list(csv.DictReader(handle))
    user = events[0]["user_id"]
    history = [event["item_id"] for event in events if event["user_id"] == user][:5]
    candidates = tf.constant([sorted({event["item_id"] for event in events})[:20]])

    def ranked(items: list[str]) -> np.ndarray:
        return model.signatures["rank"](user_id=tf.constant([user]), history=tf.constant([items]),
                                        item_ids=candidates, device=tf.constant(["mobile"]),
                                        timestamp=tf.constant([1_600_000_000], tf.int64))["click"].numpy()

    # The history counts, and so does its order.
    with_history, reordered = ranked(history), ranked(history[::-1])
    assert not np.allclose(with_history, ranked([""] * len(history)), atol=1e-6)
    assert not np.allclose(with_history, reordered, atol=1e-6)
