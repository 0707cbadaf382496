"""The TFRS multitask baseline: mtrec's interface, it learns, loss weights, SavedModel round trip, Keras 2/3."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from models import features
from models.tfrs_baseline import CLICK_LOGIT, RATING_LABEL, TFRSMultitaskModel

NUM_USERS, NUM_ITEMS, EVENTS_PER_USER, DIM = 50, 40, 24, 32
BATCH = 128
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTPUT_KEYS = {features.USER_EMBEDDING, features.ITEM_EMBEDDING, features.CLICK_PROBABILITY,
               features.RATING_PREDICTION, CLICK_LOGIT}
SCORE_KEYS = {features.CLICK_PROBABILITY, features.RATING_PREDICTION, CLICK_LOGIT}


def _synthetic() -> dict[str, np.ndarray]:
    """Ratings with signal: a user bias plus an item bias plus a user-cluster x item-cluster affinity.

    Users pick items mostly from their own cluster, so retrieval has structure to learn as well.
    """
    rng = np.random.default_rng(7)
    user_bias = rng.normal(0.0, 0.7, NUM_USERS)
    item_bias = rng.normal(0.0, 0.7, NUM_ITEMS)
    user_cluster = rng.integers(0, 4, NUM_USERS)
    item_cluster = np.arange(NUM_ITEMS) % 4
    users, items = [], []
    for user in range(NUM_USERS):
        own = np.flatnonzero(item_cluster == user_cluster[user])
        picks = np.where(rng.random(EVENTS_PER_USER) < 0.8, rng.choice(own, EVENTS_PER_USER),
                         rng.integers(0, NUM_ITEMS, EVENTS_PER_USER))
        users += [user] * EVENTS_PER_USER
        items += picks.tolist()
    users, items = np.array(users, np.int64), np.array(items, np.int64)
    affinity = np.where(user_cluster[users] == item_cluster[items], 0.8, -0.8)
    ratings = np.clip(np.round(3.3 + user_bias[users] + item_bias[items] + affinity + rng.normal(0, 0.3, len(users))),
                      1, 5)
    return {features.USER_INDEX: users, features.ITEM_INDEX: items, RATING_LABEL: ratings.astype(np.float32)}


DATA = _synthetic()


def _dataset(shuffle: bool = True) -> tf.data.Dataset:
    dataset = tf.data.Dataset.from_tensor_slices(DATA)
    if shuffle:
        dataset = dataset.shuffle(len(DATA[RATING_LABEL]), seed=1, reshuffle_each_iteration=True)
    return dataset.batch(BATCH)


def _model(rating_weight: float, retrieval_weight: float) -> TFRSMultitaskModel:
    tf_keras.utils.set_random_seed(5)
    model = TFRSMultitaskModel(NUM_USERS, NUM_ITEMS, candidate_indices=range(NUM_ITEMS),
                               rating_weight=rating_weight, retrieval_weight=retrieval_weight)
    model.compile(optimizer=tf_keras.optimizers.Adagrad(0.1))
    return model


def _all_inputs() -> dict[str, tf.Tensor]:
    return {key: tf.constant(value) for key, value in DATA.items()}


def _rmse(model: TFRSMultitaskModel) -> float:
    predictions = model(_all_inputs())[features.RATING_PREDICTION].numpy()
    return float(np.sqrt(np.mean((predictions - DATA[RATING_LABEL]) ** 2)))


def _retrieval_loss(model: TFRSMultitaskModel) -> float:
    """In-batch softmax loss on one fixed batch (the first BATCH examples, unshuffled)."""
    batch = next(iter(_dataset(shuffle=False)))
    outputs = model(batch)
    return float(model.retrieval_task(outputs[features.USER_EMBEDDING], outputs[features.ITEM_EMBEDDING],
                                      compute_metrics=False))


def test_outputs_and_towers_have_mtrec_shapes():
    model = _model(1.0, 1.0)
    inputs = {key: value[:7] for key, value in _all_inputs().items()}
    inputs["history_indices"] = tf.zeros([7, 3], tf.int64)  # extra keys are ignored

    outputs = model(inputs)
    assert set(outputs) == OUTPUT_KEYS
    assert outputs[features.USER_EMBEDDING].shape == (7, DIM)
    assert outputs[features.ITEM_EMBEDDING].shape == (7, DIM)
    for key in SCORE_KEYS:
        assert outputs[key].shape == (7,)
    user, item = model.user_tower(inputs), model.item_tower(inputs)
    assert user.shape == (7, DIM) and item.shape == (7, DIM)
    scores = model.score(user, item)
    assert set(scores) == SCORE_KEYS
    np.testing.assert_allclose(scores[CLICK_LOGIT], scores[features.RATING_PREDICTION] - 3.5, rtol=1e-6)
    np.testing.assert_allclose(scores[features.CLICK_PROBABILITY], tf.sigmoid(scores[CLICK_LOGIT]), rtol=1e-6)
    assert np.isfinite(float(model.compute_loss(inputs, training=False)))


@pytest.fixture(scope="module")
def joint():
    """(model, retrieval loss before training, fit history) of the joint 1/1 model after 10 epochs."""
    model = _model(1.0, 1.0)
    retrieval_before = _retrieval_loss(model)
    history = model.fit(_dataset(), epochs=10, verbose=0)
    return model, retrieval_before, history


def test_joint_model_learns_ratings_and_retrieval(joint):
    model, retrieval_before, history = joint
    mean_rmse = float(np.std(DATA[RATING_LABEL]))  # RMSE of predicting the training mean
    assert _rmse(model) < 0.8 * mean_rmse
    assert _retrieval_loss(model) < 0.9 * retrieval_before
    # The tutorial's metrics run during training too.
    assert "root_mean_squared_error" in history.history
    assert "factorized_top_k/top_10_categorical_accuracy" in history.history
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize(("rating_weight", "retrieval_weight"), [(0.0, 1.0), (1.0, 0.0)])
def test_single_task_weights(rating_weight, retrieval_weight):
    model = _model(rating_weight, retrieval_weight)
    batch = next(iter(_dataset()))
    with tf.GradientTape() as tape:
        loss = model.compute_loss(batch, training=True)
    rating_head = model.rating_model.trainable_variables
    gradients = tape.gradient(loss, rating_head)
    assert rating_head
    if rating_weight == 0.0:
        assert all(g is None or not np.any(g.numpy()) for g in gradients)
    else:
        assert any(g is not None and np.any(g.numpy()) for g in gradients)
        np.testing.assert_allclose(
            float(loss), float(model.rating_task(tf.reshape(batch[RATING_LABEL], (-1, 1)), tf.reshape(
                model(batch)[features.RATING_PREDICTION], (-1, 1)), compute_metrics=False)), rtol=1e-5)
    head_before = [variable.numpy() for variable in rating_head]
    rmse_before = _rmse(model)
    history = model.fit(_dataset(), epochs=1, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    if rating_weight == 0.0:  # the rating head never moved
        for variable, before in zip(rating_head, head_before, strict=True):
            np.testing.assert_array_equal(variable.numpy(), before)
    else:
        assert _rmse(model) < rmse_before


class _Serving(tf.Module):
    """What models.export.ServingModule does with the model, minus Transform: towers and score in signatures."""

    def __init__(self, model: TFRSMultitaskModel):
        super().__init__()
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name=features.USER_INDEX)])
    def user_embedding(self, user_index: tf.Tensor) -> dict[str, tf.Tensor]:
        return {features.USER_EMBEDDING: self.model.user_tower({features.USER_INDEX: user_index})}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name=features.ITEM_INDEX)])
    def item_embedding(self, item_index: tf.Tensor) -> dict[str, tf.Tensor]:
        return {features.ITEM_EMBEDDING: self.model.item_tower({features.ITEM_INDEX: item_index})}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name=features.USER_INDEX),
                                  tf.TensorSpec([None], tf.int64, name=features.ITEM_INDEX)])
    def rank(self, user_index: tf.Tensor, item_index: tf.Tensor) -> dict[str, tf.Tensor]:
        inputs = {features.USER_INDEX: user_index, features.ITEM_INDEX: item_index}
        return self.model.score(self.model.user_tower(inputs), self.model.item_tower(inputs))


def test_saved_model_round_trip(joint, tmp_path):
    model = joint[0]  # trained, so every layer (the catalogue top K too) has been called and is saved traced
    module = _Serving(model)
    export_dir = str(tmp_path / "tfrs_baseline")
    tf.saved_model.save(module, export_dir, signatures={
        "user_embedding": module.user_embedding, "item_embedding": module.item_embedding, "rank": module.rank})

    loaded = tf.saved_model.load(export_dir)
    users, items = tf.constant([0, 3, 49], tf.int64), tf.constant([1, 2, 39], tf.int64)
    user_inputs = {features.USER_INDEX: users, features.ITEM_INDEX: items}
    expected = model.score(model.user_tower(user_inputs), model.item_tower(user_inputs))
    ranked = loaded.signatures["rank"](user_index=users, item_index=items)
    assert set(ranked) == SCORE_KEYS
    for key in SCORE_KEYS:
        np.testing.assert_allclose(ranked[key], expected[key], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.signatures["user_embedding"](user_index=users)[features.USER_EMBEDDING],
                               model.user_tower(user_inputs), rtol=1e-6)
    np.testing.assert_allclose(loaded.item_embedding(items)[features.ITEM_EMBEDDING], model.item_tower(user_inputs),
                               rtol=1e-6)


def test_imports_after_keras_3_owns_tf_keras():
    """keras_hub pins tf.keras to Keras 3 on import; the baseline still gets TFRS on tf_keras, tf.keras stays 3."""
    script = textwrap.dedent(f"""
        import keras, keras_hub, tensorflow as tf
        assert tf.keras.version().startswith("3."), tf.keras.version()
        from models.tfrs_baseline import TFRSMultitaskModel, tfrs
        import tf_keras
        assert tf.keras.version().startswith("3.")
        model = TFRSMultitaskModel(5, 6, range(6), rating_weight=1.0, retrieval_weight=1.0)
        assert isinstance(model, tf_keras.Model) and isinstance(model.retrieval_task, tf_keras.layers.Layer)
        model.compile(optimizer=tf_keras.optimizers.Adagrad(0.1))
        data = {{"{features.USER_INDEX}": tf.constant([0, 1, 2, 3], tf.int64),
                 "{features.ITEM_INDEX}": tf.constant([1, 2, 3, 5], tf.int64),
                 "{RATING_LABEL}": tf.constant([1.0, 2.0, 4.0, 5.0])}}
        history = model.fit(tf.data.Dataset.from_tensor_slices(data).batch(2), epochs=1, verbose=0)
        print("OK", sorted(history.history))
    """)
    env = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}  # set by our import
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout
