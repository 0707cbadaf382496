"""The multi-task model: output shapes, every task's loss decreases, a zero weight removes a task's gradient."""

from __future__ import annotations

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from models import features, tasks
from models.model import MultiTaskRecommender
from models.text_encoder import TextEncoder
from models.towers import ItemTower, UserTower

BATCH, HISTORY, CATEGORIES, LENGTH, VOCABULARY = 16, 5, 2, 8, 50


def build(task_weights=None, dim=8):
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=VOCABULARY, num_layers=1, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=LENGTH)
    item_embedding = keras.layers.Embedding(21, dim)
    return MultiTaskRecommender(
        user_tower=UserTower(10, item_embedding, dim),
        item_tower=ItemTower(item_embedding, 5, TextEncoder(backbone, trainable=True), dim),
        task_weights=task_weights or {"retrieval": 1.0, "click": 1.0, "rating": 1.0},
    )


def batch():
    rng = np.random.default_rng(0)
    items = np.arange(1, BATCH + 1)
    users = rng.integers(0, 10, BATCH)
    return {
        features.USER_INDEX: users,
        features.ITEM_INDEX: items,
        features.HISTORY_INDICES: rng.integers(0, 21, (BATCH, HISTORY)),
        features.CATEGORY_INDICES: rng.integers(0, 5, (BATCH, CATEGORIES)),
        features.TEXT_TOKEN_IDS: rng.integers(1, VOCABULARY, (BATCH, LENGTH)),
        features.TEXT_PADDING_MASK: np.ones((BATCH, LENGTH), "int64"),
        features.transformed_label("click"): (items % 2).astype("float32"),
        features.transformed_label("rating"): (1 + items % 5).astype("float32"),
    }


def test_outputs_are_named_and_shaped():
    outputs = build()(batch())
    assert outputs[features.USER_EMBEDDING].shape == (BATCH, 8)
    assert outputs[features.ITEM_EMBEDDING].shape == (BATCH, 8)
    assert outputs[features.CLICK_PROBABILITY].shape == (BATCH,)
    assert outputs[features.RATING_PREDICTION].shape == (BATCH,)
    probabilities = np.asarray(outputs[features.CLICK_PROBABILITY])
    assert ((probabilities > 0) & (probabilities < 1)).all()


def test_every_task_loss_decreases():
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    one_batch = tf.data.Dataset.from_tensors(batch())
    first = model.evaluate(one_batch, return_dict=True, verbose=0)
    model.fit(one_batch.repeat(60), epochs=1, verbose=0)
    last = model.evaluate(one_batch, return_dict=True, verbose=0)
    for task in ("retrieval", "click", "rating"):
        assert last[f"{task}_loss"] < first[f"{task}_loss"], task


def test_zero_weight_removes_a_tasks_gradient():
    model = build({"retrieval": 1.0, "click": 0.0, "rating": 1.0})
    data = batch()
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=data, y_pred=model(data, training=True))
    gradients = tape.gradient(loss, model.click_head.trainable_variables)
    assert all(g is None or float(tf.reduce_max(tf.abs(g))) == 0.0 for g in gradients)


def test_unknown_task_weight_is_rejected():
    with pytest.raises(ValueError, match=r"unknown tasks \['ctr'\]"):
        build({"ctr": 1.0})


def test_retrieval_loss_matches_hand_computation():
    users = np.array([[1.0, 0.0], [0.0, 1.0]])
    items = np.array([[1.0, 0.0], [1.0, 0.0]])
    # Both rows hold item 7: the off-diagonal hit is masked, so each row's softmax sees only its own item.
    same = tasks.retrieval_loss(users, items, np.array([7, 7]), np.array([1.0, 1.0]), temperature=1.0)
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    # Distinct items: row 0 logits [1, 1] -> log 2; row 1 logits [0, 0] -> log 2. Row 1 has weight 0.
    distinct = tasks.retrieval_loss(users, items, np.array([7, 8]), np.array([1.0, 0.0]), temperature=1.0)
    assert float(distinct) == pytest.approx(np.log(2.0), rel=1e-5)
