"""The exported SavedModel: every signature, OOV fallbacks, the catalogue index, and TF Serving-safe ops, for
each variant of the small model (tests.conftest.MODEL_VARIANTS: the mean user tower, the transformer tower with
target attention, target attention alone)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the Transform graph's WordPiece ops)

from components.example_gen import input_contract
from components.serving_check import ops
from models import features
from tests.conftest import MODEL_VARIANTS


@pytest.fixture(scope="module", params=list(MODEL_VARIANTS))
def variant(request):
    """(model options, data dir, SavedModel dir) of each small model variant."""
    return MODEL_VARIANTS[request.param], *request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def exported(variant):
    _, data_dir, model_dir = variant
    items = input_contract.read_items(os.path.join(data_dir, input_contract.ITEMS_FILE))
    return tf.saved_model.load(model_dir), items


def test_every_op_is_in_tf_servings_op_set(variant):
    _, _, model_dir = variant
    report = ops.check(model_dir)
    assert report.passed, report.describe()


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


def test_a_history_item_outside_the_id_vocabulary_counts_through_its_content(exported, variant):
    """Two histories of one item each, two catalogue items no event names (outside the id vocabulary): an id
    reads the same OOV row for both; the transformer tower and target attention read the items' content."""
    model, items = exported
    options, data_dir, _ = variant
    seen = {event.item_id for event in input_contract.read_events(
        os.path.join(data_dir, input_contract.EVENTS_FILE), items)}
    first, second = sorted(set(items) - seen)[:2]
    args = {"user_id": tf.constant(["user_00001"] * 2), "history": tf.constant([[first], [second]])}
    users = model.signatures["user_embedding"](**args)[features.USER_EMBEDDING].numpy()
    clicks = model.signatures["rank"](item_ids=tf.constant([sorted(items)[:3]] * 2), **args)["click"].numpy()
    reads_content = {"user_embedding": options.get("user_tower") == "transformer"}
    reads_content["rank"] = reads_content["user_embedding"] or options.get("target_attention", False)
    for signature, values in (("user_embedding", users), ("rank", clicks)):
        same = np.allclose(values[0], values[1], rtol=0, atol=1e-6)
        assert same != reads_content[signature], (signature, np.abs(values[0] - values[1]).max())


@pytest.fixture(scope="module")
def featured(featured_model):
    from components.example_gen import executor
    from pipeline.data import synthetic

    data_dir, model_dir = featured_model
    declared = synthetic.declared_features()
    items = input_contract.read_items(os.path.join(data_dir, input_contract.ITEMS_FILE), declared=declared)
    users = input_contract.read_users(os.path.join(data_dir, input_contract.USERS_FILE), declared)
    return tf.saved_model.load(model_dir), items, users, declared, executor


def _featured_example(executor, declared, item, user=None, device="mobile", timestamp=1_600_000_000):
    event = input_contract.Event("user_00002", item.item_id, timestamp, {}, {"device": (device,) if device else ()})
    return executor.to_example(event, item, ["item_00003"], user, declared).SerializeToString()


def test_rank_takes_the_declared_context_and_the_user_table(featured):
    model, items, users, _, _ = featured
    inputs = model.signatures["rank"].structured_input_signature[1]
    assert set(inputs) == {"user_id", "history", "item_ids", "device", "timestamp"}
    known = sorted(items)[:2]
    args = {"user_id": tf.constant(["user_00002", "user_00002"]), "history": tf.constant([["item_00003"]] * 2),
            "item_ids": tf.constant([known, known]), "timestamp": tf.constant([1_600_000_000] * 2, tf.int64)}
    mobile_tv = model.signatures["rank"](device=tf.constant(["mobile", "tv"]), **args)["click"].numpy()
    assert not np.allclose(mobile_tv[0], mobile_tv[1])  # the context reaches the ranking heads
    unseen = model.signatures["rank"](device=tf.constant(["smartwatch", ""]), **args)["click"].numpy()
    assert np.isfinite(unseen).all()  # a category never seen in training is OOV, a missing one is missing


def test_serving_default_takes_user_features_from_the_table_unless_the_example_overrides_them(featured):
    model, items, users, declared, executor = featured
    item = items[sorted(items)[4]]
    user = users["user_00002"]
    from_table = model.signatures["serving_default"](examples=tf.constant([
        _featured_example(executor, declared, item)]))["click"].numpy()
    given = model.signatures["serving_default"](examples=tf.constant([
        _featured_example(executor, declared, item, user)]))["click"].numpy()
    np.testing.assert_allclose(from_table, given, rtol=1e-5)  # the table holds what ExampleGen joined
    other_age = "18-24" if user.attributes["age_group"] != ("18-24",) else "50+"
    overridden = input_contract.User(user.user_id, {**user.attributes, "age_group": (other_age,)})
    changed = model.signatures["serving_default"](examples=tf.constant([
        _featured_example(executor, declared, item, overridden)]))["click"].numpy()
    assert not np.allclose(changed, given)  # a feature the example carries wins over the table
    ranked = model.signatures["rank"](
        user_id=tf.constant(["user_00002"]), history=tf.constant([["item_00003"]]),
        item_ids=tf.constant([[item.item_id]]), device=tf.constant(["mobile"]),
        timestamp=tf.constant([1_600_000_000], tf.int64))["click"].numpy()
    np.testing.assert_allclose(ranked[0, 0], given[0], rtol=1e-4)  # rank reads the same user table


def test_user_embedding_reads_the_user_table(featured):
    """The user_embedding signature (id and history only) gives the embedding of the user's table features."""
    model, items, users, declared, executor = featured
    user = users["user_00002"]
    item = items[sorted(items)[0]]
    other_age = "18-24" if user.attributes["age_group"] != ("18-24",) else "50+"
    overridden = input_contract.User(user.user_id, {**user.attributes, "age_group": (other_age,)})
    served = model.signatures["serving_default"](examples=tf.constant([
        _featured_example(executor, declared, item, user), _featured_example(executor, declared, item, overridden)]))
    vectors = tf.math.l2_normalize(served["user_embedding"], axis=-1).numpy()
    by_id = model.signatures["user_embedding"](user_id=tf.constant(["user_00002"]),
                                               history=tf.constant([["item_00003"]]))["user_embedding"].numpy()
    np.testing.assert_allclose(by_id[0], vectors[0], atol=1e-5)
    assert not np.allclose(by_id[0], vectors[1], atol=1e-3)
