"""The RetrievalEvaluator over a tiny hand-built split and a stand-in SavedModel whose `retrieve` returns a fixed
list: which events count, the popularity baseline from the train split's positives, the slices and the verdict."""

from __future__ import annotations

import os

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components.retrieval_evaluator import component
from models import features


def _example(user: str, item: str, history: list[str], clicked: int, popularity: str, activity: str) -> bytes:
    def strings(*values: str) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))

    return tf.train.Example(features=tf.train.Features(feature={
        features.USER_ID: strings(user), features.ITEM_ID: strings(item), features.HISTORY: strings(*history),
        features.ITEM_POPULARITY: strings(popularity), features.USER_ACTIVITY: strings(activity),
        "clicked": tf.train.Feature(int64_list=tf.train.Int64List(value=[clicked]))})).SerializeToString()


def _examples(tmp_path, splits: dict[str, list[bytes]]) -> standard_artifacts.Examples:
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = '["train", "eval"]'
    for split, records in splits.items():
        os.makedirs(os.path.join(examples.uri, f"Split-{split}"))
        with tf.io.TFRecordWriter(os.path.join(examples.uri, f"Split-{split}", "data.gz"), "GZIP") as writer:
            for record in records:
                writer.write(record)
    return examples


def _fixed_retriever(tmp_path, name: str, ranked: list[str]) -> str:
    """A SavedModel whose `retrieve` gives every user `ranked` (without the history's items when asked)."""
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None, None], tf.string),
                                  tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.bool)])
    def retrieve(user_id, history, k, exclude_history):
        candidates = tf.tile(tf.constant(ranked)[None, :], [tf.shape(user_id)[0], 1])
        seen = tf.reduce_any(candidates[:, :, None] == history[:, None, :], axis=-1)
        keep = tf.logical_not(tf.logical_and(seen, exclude_history[:, None]))
        kept = tf.ragged.boolean_mask(candidates, keep).to_tensor("")
        return {features.ITEM_IDS: kept[:, :tf.reduce_max(k)], features.SCORES: tf.zeros(tf.shape(kept))}

    module.retrieve = retrieve
    path = str(tmp_path / name)
    tf.saved_model.save(module, path, signatures={features.RETRIEVE_SIGNATURE: retrieve})
    return path


SETTINGS = {"label": "clicked", "label_dtype": "int", "cutoffs": [1, 2], "gate_cutoff": None, "min_lift": 1.1,
            "max_recall_decrease": 0.1, "exclude_history": True}


@pytest.fixture
def examples(tmp_path):
    # Train positives: b twice, a once; c only unclicked, so the popularity list is b, a.
    train = [_example("u1", "b", [], 1, "x", "x"), _example("u2", "b", [], 1, "x", "x"),
             _example("u1", "a", [], 1, "x", "x"), _example("u2", "c", [], 0, "x", "x"),
             _example("u3", "c", [], 0, "x", "x")]
    # Eval: the unclicked event does not count; the cold item c and the new user u9.
    evaluation = [_example("u1", "a", ["b"], 1, "popular", "regular"),
                  _example("u2", "c", [], 1, "cold", "regular"),
                  _example("u9", "b", [], 1, "popular", "new"),
                  _example("u3", "a", [], 0, "popular", "regular")]
    return _examples(tmp_path, {"train": train, "eval": evaluation})


def test_figures_per_slice_against_the_popularity_baseline(examples, tmp_path):
    model = _fixed_retriever(tmp_path, "model", ["c", "a", "b"])
    report = component.evaluate(examples, model, None, SETTINGS)
    overall = report["slices"]["overall"]
    assert overall["examples"] == 3
    # Model ranks: a 2nd (u1, b left out of c, a), c 1st, b 3rd: beyond the depth of 2, so not in the MRR either.
    # Popularity (b, a): a 1st once b is left out, c never, b 1st.
    assert overall["model"] == pytest.approx({"recall@1": 1 / 3, "ndcg@1": 1 / 3, "recall@2": 2 / 3,
                                              "ndcg@2": (1 + 1 / 1.5849625) / 3, "mrr": (1 / 2 + 1) / 3})
    assert overall["popularity"]["recall@1"] == pytest.approx(2 / 3)
    assert report["slices"]["item_popularity=cold"]["model"]["recall@1"] == 1.0
    assert report["slices"]["item_popularity=cold"]["popularity"]["recall@2"] == 0.0
    assert report["slices"]["user_activity=new"]["examples"] == 1
    # The gate reads Recall@1 (the smallest cutoff): 1/3 is below 1.1 x 2/3.
    assert report["blessed"] is False
    assert report["failures"] == ["Recall@1 0.3333 is below 1.1x the popularity baseline's 0.6667"]


def test_a_model_above_the_baselines_is_blessed_and_compared_with_the_blessed_one(examples, tmp_path):
    model = _fixed_retriever(tmp_path, "model", ["c", "b", "a"])  # a 2nd for u1 (b left out), c 1st, b 2nd
    blessed = _fixed_retriever(tmp_path, "blessed", ["c", "a", "b"])  # b 3rd: a miss at 2
    report = component.evaluate(examples, model, blessed, {**SETTINGS, "cutoffs": [2]})
    overall = report["slices"]["overall"]
    assert overall["model"]["recall@2"] == 1.0
    assert overall["baseline"]["recall@2"] == pytest.approx(2 / 3)
    assert overall["popularity"]["recall@2"] == pytest.approx(2 / 3)  # a for u1 (b left out), b for u9
    assert report["blessed"] is True and report["failures"] == []
    # Against a blessed model better by more than max_recall_decrease, the same model is refused.
    report = component.evaluate(examples, blessed, model, {**SETTINGS, "cutoffs": [2], "min_lift": 0.0})
    assert report["failures"] == ["Recall@2 0.6667 dropped by more than 0.1 from the latest blessed model's 1.0000"]
