"""The exported SavedModel: every signature, OOV fallbacks, the catalogue index, and TF Serving-safe ops."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the Transform graph's WordPiece ops)

from components.example_gen import input_contract
from models import features


@pytest.fixture(scope="module")
def exported(exported_model):
    data_dir, model_dir = exported_model
    items = input_contract.read_items(os.path.join(data_dir, input_contract.ITEMS_FILE))
    return tf.saved_model.load(model_dir), items


def test_has_every_signature(exported):
    model, _ = exported
    assert set(model.signatures) == {"serving_default", "rank", "retrieve", "user_embedding", "item_embedding"}


def test_rank_scores_every_candidate_and_tolerates_unknown_ids(exported):
    model, items = exported
    known = sorted(items)[:3]
    out = model.signatures["rank"](
        user_id=tf.constant(["user_00001", "nobody"]),
        history=tf.constant([[known[0], ""], ["", ""]]),
        item_ids=tf.constant([known, [known[1], "no such item", known[2]]]))
    click = out[features.CLICK_PROBABILITY].numpy()
    assert click.shape == (2, 3) and ((click > 0) & (click < 1)).all()
    assert out[features.RATING_PREDICTION].shape == (2, 3)


def test_rank_agrees_with_serving_default(exported):
    """Same user, history and item through both paths: the same click probability."""
    model, items = exported
    item = items[sorted(items)[4]]
    example = tf.train.Example(features=tf.train.Features(feature={
        features.USER_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"user_00002"])),
        features.ITEM_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[item.item_id.encode()])),
        features.TIMESTAMP: tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
        features.TITLE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[item.title.encode()])),
        features.DESCRIPTION: tf.train.Feature(bytes_list=tf.train.BytesList(value=[item.description.encode()])),
        features.CATEGORIES: tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[c.encode() for c in item.categories])),
        features.HISTORY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"item_00003"])),
    }))
    direct = model.signatures["serving_default"](examples=tf.constant([example.SerializeToString()]))
    ranked = model.signatures["rank"](user_id=tf.constant(["user_00002"]), history=tf.constant([["item_00003"]]),
                                      item_ids=tf.constant([[item.item_id]]))
    np.testing.assert_allclose(ranked["click"].numpy()[0, 0], direct["click"].numpy()[0], rtol=1e-4)


def test_retrieve_covers_the_whole_catalogue_including_cold_items(exported):
    model, items = exported
    out = model.signatures["retrieve"](user_id=tf.constant(["user_00001"]), history=tf.constant([[""]]),
                                       k=tf.constant([len(items) + 10]), exclude_history=tf.constant([False]))
    ids = [i.decode() for i in out[features.ITEM_IDS].numpy()[0]]
    assert sorted(ids) == sorted(items)  # k is capped at the catalogue size; every item, cold ones too
    scores = out[features.SCORES].numpy()[0]
    assert (np.diff(scores) <= 1e-6).all()


def test_retrieve_excludes_history_on_request(exported):
    model, _ = exported
    args = {"user_id": tf.constant(["user_00001"]), "k": tf.constant([5])}
    first = model.signatures["retrieve"](history=tf.constant([[""]]), exclude_history=tf.constant([False]), **args)
    top = [i.decode() for i in first[features.ITEM_IDS].numpy()[0]]
    again = model.signatures["retrieve"](history=tf.constant([top[:2]]), exclude_history=tf.constant([True]),
                                         **args)
    assert not set(top[:2]) & {i.decode() for i in again[features.ITEM_IDS].numpy()[0]}


def test_retrieve_batch_returns_the_largest_k_and_excludes_per_row(exported):
    model, _ = exported
    out = model.signatures["retrieve"](
        user_id=tf.constant(["user_00001", "user_00001"]), history=tf.constant([["item_00002"], ["item_00002"]]),
        k=tf.constant([2, 4]), exclude_history=tf.constant([True, False]))
    ids = out[features.ITEM_IDS].numpy()
    assert ids.shape == (2, 4)
    assert b"item_00002" not in ids[0]


def test_retrieve_scores_are_dot_products_of_the_embedding_signatures(exported):
    model, _ = exported
    history = tf.constant([["item_00002", ""]])
    user = model.signatures["user_embedding"](user_id=tf.constant(["user_00003"]), history=history)
    out = model.signatures["retrieve"](user_id=tf.constant(["user_00003"]), history=history, k=tf.constant([3]),
                                       exclude_history=tf.constant([False]))
    items = model.signatures["item_embedding"](item_ids=tf.reshape(out[features.ITEM_IDS], [-1]))
    expected = items[features.ITEM_EMBEDDING].numpy() @ user[features.USER_EMBEDDING].numpy()[0]
    np.testing.assert_allclose(out[features.SCORES].numpy()[0], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(user[features.USER_EMBEDDING].numpy(), axis=1), 1.0, rtol=1e-5)
