"""The multi-task model: shapes, every task learns, zero weights remove gradients, every expert and gate trains."""

from __future__ import annotations

import warnings

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from models import features, loss_balancing, ranking, tasks
from models.catalogue import ItemCatalogue
from models.model import MultiTaskRecommender
from models.sequence import HistoryTransformer, TargetAttention
from models.tasks import Task
from models.text_encoder import CachedTextEncoder, TextEncoder
from models.towers import ItemTower, UserTower

BATCH, HISTORY, CATEGORIES, LENGTH, VOCABULARY, DIM = 16, 5, 2, 8, 50, 8
TASKS = [Task("retrieval", "retrieval", "clicked"), Task("click", "binary", "clicked"),
         Task("rating", "regression", "rating")]
KEY_BASE = 1000  # the catalogue key of item index i is KEY_BASE + i (Transform writes a hash; any int64 serves)


def item_keys(indices):
    """The catalogue keys (features.HISTORY_KEYS) of item indices; padding (0) stays 0."""
    indices = np.asarray(indices)
    return np.where(indices > 0, KEY_BASE + indices, 0)


def catalogue(text="finetune"):
    """The catalogue of the batch's items 1..BATCH, each with the categories and text of its row in `batch()`,
    then the unknown item: no categories, an empty text ([CLS] [SEP])."""
    data = batch()
    unknown = {features.CATEGORY_INDICES: np.zeros((1, CATEGORIES), "int64"),
               features.TEXT_TOKEN_IDS: np.array([[2, 3] + [0] * (LENGTH - 2)]),
               features.TEXT_PADDING_MASK: np.array([[1, 1] + [0] * (LENGTH - 2)])}
    names = [features.CATEGORY_INDICES] + ([] if text == "off" else [features.TEXT_TOKEN_IDS,
                                                                      features.TEXT_PADDING_MASK])
    return ItemCatalogue(item_keys(data[features.ITEM_INDEX]),
                         {name: np.concatenate([data[name], unknown[name]]) for name in names})


def build(task_list=TASKS, architecture="mmoe", balancing="fixed", text="finetune", log_frequency=None,
          id_dropout=0.0, user_tower="mean", target_attention=False, distillation=None):
    """`user_tower`: "mean" or "transformer" (a HistoryTransformer); a transformer tower and `target_attention`
    read the history through `catalogue()`."""
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=VOCABULARY, num_layers=2, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=LENGTH)
    # Only the chosen encoder is built: a frozen TextEncoder freezes the backbone it is given.
    encoder = {"finetune": lambda: TextEncoder(backbone, trainable_layers=1),
               "frozen": lambda: CachedTextEncoder(TextEncoder(backbone)), "off": lambda: None}[text]()
    item_embedding = keras.layers.Embedding(BATCH + 5, DIM)
    num_ranking = len(tasks.ranking_tasks(task_list))
    sequence_encoder = (HistoryTransformer(HISTORY, num_layers=1, num_heads=2, intermediate_dim=2 * DIM)
                        if user_tower == "transformer" else None)
    return MultiTaskRecommender(
        user_tower=UserTower(10, item_embedding, DIM, sequence_encoder=sequence_encoder),
        item_tower=ItemTower(item_embedding, 5, encoder, DIM, id_dropout=id_dropout),
        catalogue=catalogue(text) if sequence_encoder is not None or target_attention else None,
        target_attention=TargetAttention([8]) if target_attention else None,
        tasks=task_list,
        architecture=ranking.build_architecture(architecture, num_ranking, 3, 1, 2, [8]),
        loss_balancing=loss_balancing.build_loss_balancing(balancing, task_list),
        tower_units=[4],
        feature_cross_layers=1,
        item_log_frequency=log_frequency,
        label_means={"rating": 3.0},
        distillation=distillation,
    )


def batch():
    rng = np.random.default_rng(0)
    items = np.arange(1, BATCH + 1)
    users = rng.integers(0, 10, BATCH)
    history = rng.integers(0, BATCH + 1, (BATCH, HISTORY))
    return {
        features.USER_INDEX: users,
        features.ITEM_INDEX: items,
        features.HISTORY_INDICES: history,
        features.HISTORY_KEYS: item_keys(history),
        features.CATEGORY_INDICES: rng.integers(0, 5, (BATCH, CATEGORIES)),
        features.TEXT_TOKEN_IDS: rng.integers(1, VOCABULARY, (BATCH, LENGTH)),
        features.TEXT_PADDING_MASK: np.ones((BATCH, LENGTH), "int64"),
        features.transformed_label("retrieval"): (items % 2).astype("float32"),
        features.transformed_label("click"): (items % 2).astype("float32"),
        features.transformed_label("rating"): (1 + items % 5).astype("float32"),
    }


def gradients(model, variables):
    data = batch()
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=data, y_pred=model(data, training=True))
    return tape.gradient(loss, variables)


def nonzero(gradient) -> bool:
    return gradient is not None and float(tf.reduce_max(tf.abs(tf.convert_to_tensor(gradient)))) > 0.0


@pytest.mark.parametrize("architecture", ranking.ARCHITECTURES)
def test_outputs_are_named_and_shaped(architecture):
    outputs = build(architecture=architecture)(batch())
    assert outputs[features.USER_EMBEDDING].shape == (BATCH, DIM)
    assert outputs[features.ITEM_EMBEDDING].shape == (BATCH, DIM)
    assert outputs["click"].shape == outputs["rating"].shape == outputs["click_logit"].shape == (BATCH,)
    probabilities = np.asarray(outputs["click"])
    assert ((probabilities > 0) & (probabilities < 1)).all()
    # The rating head starts at the training mean, so early predictions are on the label's scale.
    assert abs(float(np.mean(outputs["rating"])) - 3.0) < 1.0


@pytest.mark.parametrize(("architecture", "balancing", "id_dropout"), [
    ("shared_bottom", "fixed", 0.0), ("mmoe", "fixed", 0.0), ("ple", "fixed", 0.0), ("mmoe", "uncertainty", 0.0),
    ("mmoe", "fixed", 0.3)])
def test_every_task_loss_decreases(architecture, balancing, id_dropout):
    model = build(architecture=architecture, balancing=balancing, id_dropout=id_dropout)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    one_batch = tf.data.Dataset.from_tensors(batch())
    first = model.evaluate(one_batch, return_dict=True, verbose=0)
    model.fit(one_batch.repeat(60), epochs=1, verbose=0)
    last = model.evaluate(one_batch, return_dict=True, verbose=0)
    for task in ("retrieval", "click", "rating"):
        assert last[f"{task}_loss"] < first[f"{task}_loss"], task


@pytest.mark.parametrize("architecture", ranking.ARCHITECTURES)
def test_gradients_reach_every_expert_gate_and_tower(architecture):
    model = build(architecture=architecture)
    model(batch())
    variables = [v for v in model.architecture.trainable_variables if "kernel" in v.path]
    assert variables
    for variable, gradient in zip(variables, gradients(model, variables), strict=True):
        assert nonzero(gradient), variable.path
    if architecture == "ple":
        paths = " ".join(v.path for v in variables)
        assert "task_1_expert_0" in paths and "shared_gate" in paths and "task_0_gate" in paths


@pytest.mark.parametrize("balancing", loss_balancing.LOSS_BALANCING)
def test_zero_weight_removes_a_tasks_gradient(balancing):
    task_list = [TASKS[0], Task("click", "binary", "clicked", weight=0.0), TASKS[2]]
    model = build(task_list, architecture="ple", balancing=balancing)
    model(batch())
    click = model.task_towers["click"].trainable_variables + model.heads["click"].trainable_variables
    assert not any(nonzero(g) for g in gradients(model, click))
    rating = model.heads["rating"].trainable_variables
    assert all(nonzero(g) for g in gradients(model, rating))


def test_uncertainty_weighting_learns_one_log_variance_per_task():
    model = build(balancing="uncertainty")
    model(batch())
    variables = list(model.loss_balancing.log_variances.values())
    assert len(variables) == 3 and all(nonzero(g) for g in gradients(model, variables))


def test_any_number_of_ranking_tasks_and_no_retrieval():
    task_list = [Task("click", "binary", "clicked"), Task("liked", "binary", "clicked", weight=0.5),
                 Task("rating", "regression", "rating")]
    model = build(task_list, architecture="ple")
    data = batch()
    data[features.transformed_label("liked")] = data[features.transformed_label("click")]
    outputs = model(data)
    assert {"click", "liked", "rating"} <= set(outputs)
    assert float(model.compute_loss(x=data, y_pred=outputs)) > 0


def test_item_id_dropout_acts_only_in_training_and_through_the_oov_row():
    model = build(text="off", id_dropout=0.5)
    data = batch()
    oov = model.item_tower.item_embedding.input_dim - 1
    assert model.item_tower.item_id_dropout.oov_index == oov == BATCH + 4
    as_is = np.asarray(model.item_tower(data))
    np.testing.assert_array_equal(np.asarray(model.item_tower(data, training=False)), as_is)
    unknown = np.asarray(model.item_tower({**data, features.ITEM_INDEX: np.full(BATCH, oov)}))
    trained = np.asarray(model.item_tower(data, training=True))
    # With text off the tower has no dropout of its own: each row is either the item as is or through the OOV row.
    through_oov = np.isclose(trained, unknown, atol=1e-6).all(axis=1)
    assert (through_oov | np.isclose(trained, as_is, atol=1e-6).all(axis=1)).all()
    assert 0 < through_oov.sum() < BATCH
    # The OOV row, which no item of the batch has, gets a gradient in training (without dropout it gets none).
    for rate, trains_oov in ((0.5, True), (0.0, False)):
        model = build(text="off", id_dropout=rate)
        model(data)
        table = model.item_tower.item_embedding.embeddings
        (gradient,) = gradients(model, [table])
        assert nonzero(tf.convert_to_tensor(gradient)[oov]) == trains_oov


def test_text_off_builds_an_id_and_category_item_tower():
    outputs = build(text="off")(batch())
    assert outputs[features.ITEM_EMBEDDING].shape == (BATCH, DIM)


def test_logq_correction_changes_the_retrieval_loss():
    plain, corrected = build(), build(log_frequency=np.log(np.linspace(0.01, 0.5, BATCH + 5)).astype("float32"))
    data = batch()
    first = plain.compute_loss(x=data, y_pred=plain(data))
    second = corrected.compute_loss(x=data, y_pred=corrected(data))
    assert float(first) != pytest.approx(float(second))
    assert float(plain.loss_trackers["retrieval"].result()) != pytest.approx(
        float(corrected.loss_trackers["retrieval"].result()))


def test_retrieval_loss_matches_hand_computation():
    users = np.array([[1.0, 0.0], [0.0, 1.0]])
    items = np.array([[1.0, 0.0], [1.0, 0.0]])
    # Both rows hold item 7: the off-diagonal hit is removed, so each row's softmax sees only its own item.
    same = tasks.retrieval_loss(users, items, np.array([7, 7]), np.array([1.0, 1.0]), temperature=1.0)
    assert float(same) == pytest.approx(0.0, abs=1e-5)
    # Distinct items: row 0 logits [1, 1] -> log 2; row 1 logits [0, 0] -> log 2. Row 1 has weight 0.
    distinct = tasks.retrieval_loss(users, items, np.array([7, 8]), np.array([1.0, 0.0]), temperature=1.0)
    assert float(distinct) == pytest.approx(np.log(2.0), rel=1e-5)
    # logQ: subtracting log q from every column: row 0 logits [1 - log .5, 1 - log .25] -> softmax.
    log_q = np.log(np.array([0.5, 0.25]))
    corrected = tasks.retrieval_loss(users, items, np.array([7, 8]), np.array([1.0, 0.0]), 1.0, log_q)
    logits = np.array([1.0, 1.0]) - log_q
    assert float(corrected) == pytest.approx(-(logits[0] - np.log(np.exp(logits).sum())), rel=1e-5)


def test_conditioned_losses_match_hand_computation():
    labels, logits, given = np.array([1.0, 0.0, 1.0, 0.0]), np.array([2.0, -1.0, 0.5, 3.0]), np.array([1, 1, 0, 0])
    probability = 1 / (1 + np.exp(-logits))
    per_row = -(labels * np.log(probability) + (1 - labels) * np.log(1 - probability))
    # Only the rows whose given label is 1 count: the mean over rows 0 and 1.
    assert float(tasks.binary_loss(labels, logits, given)) == pytest.approx(per_row[:2].mean(), rel=1e-5)
    assert float(tasks.binary_loss(labels, logits)) == pytest.approx(per_row.mean(), rel=1e-5)
    assert float(tasks.binary_loss(labels, logits, np.zeros(4))) == 0.0  # a batch without any given event
    predictions, targets = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 0.0, 0.0])
    assert float(tasks.regression_loss(targets, predictions, given)) == pytest.approx(0.125)
    # ESMM: the cross-entropy of the product p(given) * p(task | given) against the label, on every row.
    product = np.array([0.9 * 0.5, 0.2 * 0.1, 0.6 * 0.5, 0.1 * 0.9])
    expected = -(labels * np.log(product) + (1 - labels) * np.log(1 - product)).mean()
    assert float(tasks.entire_space_loss(labels, product)) == pytest.approx(expected, rel=1e-5)


def conditioned_model(entire_space: bool):
    task_list = [Task("click", "binary", "clicked"),
                 Task("like", "binary", "liked", given="click", entire_space=entire_space)]
    data = batch()
    data[features.transformed_label("like")] = np.where(np.arange(BATCH) % 4 == 1, 1.0, 0.0).astype("float32")
    return build(task_list, architecture="mmoe"), data


def test_a_masked_task_learns_nothing_from_events_whose_given_label_is_0():
    model, data = conditioned_model(entire_space=False)
    head = model.heads["like"].trainable_variables
    with tf.GradientTape() as tape:
        outputs = model(data, training=True)
        like = tasks.binary_loss(data[features.transformed_label("like")], outputs["like_logit"],
                                 data[features.transformed_label("click")])
    model.compute_loss(x=data, y_pred=outputs)
    assert float(model.loss_trackers["like"].result()) == pytest.approx(float(like))  # the loss the model trains
    like_label, click_label = data[features.transformed_label("like")], data[features.transformed_label("click")]
    changed = {**data, features.transformed_label("like"): np.where(click_label == 0, 1.0 - like_label, like_label)}
    model.loss_trackers["like"].reset_state()
    model.compute_loss(x=changed, y_pred=outputs)  # the like labels of unclicked events flipped: same loss
    assert float(model.loss_trackers["like"].result()) == pytest.approx(float(like))
    assert all(nonzero(g) for g in tape.gradient(like, head))
    # The output is p(like | click), the head's own sigmoid.
    assert np.allclose(outputs["like"], 1 / (1 + np.exp(-np.asarray(outputs["like_logit"]))), atol=1e-6)


def test_an_entire_space_task_outputs_the_product_and_trains_both_heads():
    model, data = conditioned_model(entire_space=True)
    with tf.GradientTape() as tape:
        outputs = model(data, training=True)
        like = tasks.entire_space_loss(data[features.transformed_label("like")], outputs["like"])
    model.compute_loss(x=data, y_pred=outputs)
    assert float(model.loss_trackers["like"].result()) == pytest.approx(float(like))  # the loss the model trains
    conditional = 1 / (1 + np.exp(-np.asarray(outputs["like_logit"])))
    assert np.allclose(outputs["like"], np.asarray(outputs["click"]) * conditional, atol=1e-6)
    # The like loss reaches the click head too: p(click) is a factor of p(like).
    variables = model.heads["like"].trainable_variables + model.heads["click"].trainable_variables
    assert all(nonzero(g) for g in tape.gradient(like, variables))


@pytest.mark.parametrize("balancing", loss_balancing.LOSS_BALANCING)
def test_the_first_call_builds_every_layer_without_keras_build_warning(balancing):
    """Keras warns at a model's first call when a child layer stays unbuilt; the loss balancing layer, which the
    call does not use, is built from the task list alone."""
    model = build(balancing=balancing)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model(batch())
    assert not [str(w.message) for w in caught if "build()" in str(w.message)]
    assert all(layer.built for layer in model._flatten_layers())


def test_a_log1p_task_trains_on_the_transformed_scale_and_serves_the_label_scale():
    task_list = [Task("click", "binary", "clicked"), Task("watch", "regression", "watch", label_transform="log1p")]
    model, data = build(task_list), batch()
    data[features.transformed_label("watch")] = np.log1p(np.arange(BATCH, dtype="float32"))  # Transform's log1p
    outputs = model(data)
    transformed = np.asarray(outputs[features.transformed_output_name("watch")])
    assert np.allclose(outputs["watch"], np.expm1(transformed), rtol=1e-5)
    model.compute_loss(x=data, y_pred=outputs)
    expected = np.mean((transformed - data[features.transformed_label("watch")]) ** 2)
    assert float(model.loss_trackers["watch"].result()) == pytest.approx(float(expected), rel=1e-5)
