"""The history sequence: the in-model item catalogue, the transformer user tower, target attention and the text
encoder's distinct-text path. Padding never counts, order does, and a history item without an id embedding of its
own counts through its content."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from models import features
from models.catalogue import ItemCatalogue
from models.sequence import HistoryTransformer, TargetAttention
from tests.models.model_test import BATCH, DIM, HISTORY, batch, build, item_keys


def _sequence(seed=0):
    """(sequence, mask, the sequence with other values at every padded position) of four histories: full, of
    3 positions, of one and none, most recent first, then padding."""
    rng = np.random.default_rng(seed)
    lengths = np.array([HISTORY, 3, 1, 0])
    sequence = rng.normal(size=(len(lengths), HISTORY, DIM)).astype("float32")
    mask = np.arange(HISTORY)[None] < lengths[:, None]
    noise = 10 * rng.normal(size=sequence.shape).astype("float32")
    return sequence, mask, np.where(mask[..., None], sequence, noise)


def _reversed_history(data):
    """`data` with each row's non-padding history positions in reverse order (padding stays where it is), and
    which rows that changed."""
    indices, keys = data[features.HISTORY_INDICES].copy(), data[features.HISTORY_KEYS].copy()
    for row in range(len(indices)):
        kept = np.flatnonzero(indices[row] > 0)
        indices[row, kept], keys[row, kept] = indices[row, kept[::-1]], keys[row, kept[::-1]]
    changed = (indices != data[features.HISTORY_INDICES]).any(axis=1)
    return {**data, features.HISTORY_INDICES: indices, features.HISTORY_KEYS: keys}, changed


def test_catalogue_finds_keys_in_any_order_and_reads_the_unknown_row_for_any_other_key():
    table = ItemCatalogue(np.array([30, 10, 20]), {"n": np.array([[3, 3], [1, 1], [2, 2], [9, 9]]),
                                                   "x": np.array([0.3, 0.1, 0.2, -1.0])})
    keys = np.array([[20, 10, 30, 10], [0, 15, 5, 31]])  # 0: padding; 15, 5, 31: no item's key
    content = table(keys)
    np.testing.assert_array_equal(content["n"], [[2, 2], [1, 1], [3, 3], [1, 1]] + [[9, 9]] * 4)
    np.testing.assert_array_equal(content["x"], np.array([0.2, 0.1, 0.3, 0.1] + [-1.0] * 4, "float32"))
    assert content["n"].dtype == tf.int64 and content["x"].dtype == tf.float32
    # rows() keeps the keys' shape and points every key it lacks at the unknown row, eager and in a graph.
    np.testing.assert_array_equal(table.rows(keys), [[1, 0, 2, 0], [3, 3, 3, 3]])
    np.testing.assert_array_equal(tf.function(table.rows)(tf.constant(keys)), table.rows(keys))


def test_catalogue_needs_one_content_row_per_item_and_the_unknown_one():
    with pytest.raises(ValueError, match="Content `n` has 2 rows; the catalogue's 2 items and the unknown item"):
        ItemCatalogue(np.array([1, 2]), {"x": np.zeros(3), "n": np.zeros((2, 4))})
    with pytest.raises(ValueError, match="at least one item"):
        ItemCatalogue(np.array([], "int64"), {"n": np.zeros((1, 4))})


def test_history_transformer_ignores_padding_and_is_zero_without_history():
    keras.utils.set_random_seed(0)
    layer = HistoryTransformer(HISTORY, num_layers=2, num_heads=2, intermediate_dim=16)
    sequence, mask, padded_otherwise = _sequence()
    output = np.asarray(layer(sequence, mask))
    assert output.shape == (len(sequence), DIM)
    np.testing.assert_allclose(layer(padded_otherwise, mask), output, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(output[-1], np.zeros(DIM))  # no history at all
    assert (np.abs(output[:-1]).max(axis=1) > 1e-3).all()
    # A position that is not padding does count.
    changed = sequence.copy()
    changed[0, HISTORY - 1] += 1.0
    assert not np.allclose(layer(changed, mask)[0], output[0], atol=1e-4)


def test_target_attention_weights_the_history_by_its_relevance_to_the_candidate_and_ignores_padding():
    keras.utils.set_random_seed(0)
    layer = TargetAttention([8])
    sequence, mask, padded_otherwise = _sequence()
    candidate = np.random.default_rng(1).normal(size=(len(sequence), DIM)).astype("float32")
    output = np.asarray(layer(candidate, sequence, mask))
    assert output.shape == (len(sequence), DIM)
    np.testing.assert_allclose(layer(candidate, padded_otherwise, mask), output, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(output[-1], np.zeros(DIM))  # a history of padding only
    np.testing.assert_allclose(output[-2], sequence[-2, 0], rtol=1e-6)  # one position: all the weight
    # The full row by hand: the softmax over the positions of the scoring MLP's scores weights the positions.
    query = np.broadcast_to(candidate[0], sequence[0].shape)
    pairs = np.concatenate([query, sequence[0], query - sequence[0], query * sequence[0]], axis=-1)
    scores = np.asarray(layer.score_output(layer.scorer(pairs)))[:, 0]
    weights = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    np.testing.assert_allclose(output[0], weights @ sequence[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(weights, 1 / HISTORY, atol=1e-3)
    # Another candidate weights the same history otherwise.
    other = np.asarray(layer(candidate[::-1].copy(), sequence, mask))
    assert not np.allclose(other[0], output[0], atol=1e-4)


def test_padded_history_positions_never_change_the_models_outputs():
    model = build(user_tower="transformer", target_attention=True)
    data = batch()
    padding = data[features.HISTORY_INDICES] == 0
    assert padding.any() and not padding.all()
    # Padded positions keyed to a real catalogue item: the catalogue reads its content, the mask drops it.
    changed = {**data, features.HISTORY_KEYS: np.where(padding, item_keys(3), data[features.HISTORY_KEYS])}
    before, after = model(data), model(changed)
    for name in (features.USER_EMBEDDING, features.ITEM_EMBEDDING, "click", "rating"):
        np.testing.assert_allclose(after[name], before[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("user_tower", ["mean", "transformer"])
def test_the_order_of_the_history_counts_only_in_the_transformer_tower(user_tower):
    model = build(user_tower=user_tower)
    data = batch()
    reordered, changed = _reversed_history(data)
    assert changed.sum() >= BATCH // 2
    before = np.asarray(model(data)[features.USER_EMBEDDING])
    after = np.asarray(model(reordered)[features.USER_EMBEDDING])
    if user_tower == "mean":
        np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(after[~changed], before[~changed], rtol=1e-5, atol=1e-6)
        for row in np.flatnonzero(changed):
            assert not np.allclose(after[row], before[row], atol=1e-4), row


@pytest.mark.parametrize("user_tower", ["mean", "transformer"])
def test_a_history_item_without_an_id_embedding_counts_through_its_content(user_tower):
    """Two users alike but for their one history item, both outside the id vocabulary (the OOV index) and
    different catalogue items: the mean of id embeddings cannot tell them apart, the transformer tower can."""
    model = build(user_tower=user_tower)
    oov = model.item_tower.item_embedding.input_dim - 1
    data = {name: value[:2].copy() for name, value in batch().items()}
    data[features.USER_INDEX][:] = data[features.USER_INDEX][0]
    history = np.zeros((2, HISTORY), "int64")
    history[:, 0] = [2, 5]
    data[features.HISTORY_INDICES] = np.where(history > 0, oov, 0)
    data[features.HISTORY_KEYS] = item_keys(history)
    first, second = batch()[features.TEXT_TOKEN_IDS][[1, 4]]  # items 2 and 5: different texts
    assert (first != second).any()
    users = np.asarray(model(data)[features.USER_EMBEDDING])
    if user_tower == "mean":
        np.testing.assert_allclose(users[0], users[1], rtol=0, atol=1e-7)
    else:
        assert not np.allclose(users[0], users[1], atol=1e-4)


def test_distinct_texts_give_the_per_event_embeddings_and_gradients_and_encode_fewer_rows():
    model = build(user_tower="transformer", target_attention=True)
    data = batch()
    model(data)
    encoder = model.item_tower.text_encoder
    variables = encoder.trainable_variables
    assert variables
    encoded = []
    encode = encoder.encode

    def counting_encode(token_ids, padding_mask):
        encoded.append(int(token_ids.shape[0]))
        return encode(token_ids, padding_mask)

    encoder.encode = counting_encode

    def run(distinct):
        encoder.distinct = distinct
        encoded.clear()
        with tf.GradientTape() as tape:
            outputs = model(data)
            loss = model.compute_loss(x=data, y_pred=outputs)
        return outputs, [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)], sum(encoded)

    outputs, gradients, rows = run(distinct=True)
    per_event_outputs, per_event_gradients, per_event_rows = run(distinct=False)
    # The batch's candidates and every history position (their catalogue texts): many repeats.
    texts = np.concatenate([data[features.TEXT_TOKEN_IDS],
                            np.asarray(model.catalogue(data[features.HISTORY_KEYS])[features.TEXT_TOKEN_IDS])])
    assert per_event_rows == len(texts) == BATCH * (1 + HISTORY)
    assert rows == len(np.unique(texts, axis=0)) < per_event_rows // 4
    for name in (features.USER_EMBEDDING, features.ITEM_EMBEDDING, "click", "rating"):
        np.testing.assert_allclose(outputs[name], per_event_outputs[name], rtol=1e-5, atol=1e-6, err_msg=name)
    for variable, gradient, expected in zip(variables, gradients, per_event_gradients, strict=True):
        assert float(tf.reduce_max(tf.abs(expected))) > 0.0, variable.path
        np.testing.assert_allclose(gradient, expected, rtol=1e-4, atol=1e-7, err_msg=variable.path)


def test_target_attention_needs_the_history_and_the_outputs_keep_their_shapes():
    model = build(user_tower="transformer", target_attention=True)
    data = batch()
    outputs = model(data)
    assert outputs[features.USER_EMBEDDING].shape == outputs[features.ITEM_EMBEDDING].shape == (BATCH, DIM)
    assert outputs["click"].shape == outputs["rating"].shape == outputs["click_logit"].shape == (BATCH,)
    user, item = outputs[features.USER_EMBEDDING], outputs[features.ITEM_EMBEDDING]
    with pytest.raises(ValueError, match="Target attention needs the history sequence"):
        model.score(user, item)
    with pytest.raises(ValueError, match="A sequence user tower needs the history sequence"):
        model.user_tower(data)
    # The history sequence on its own (serving's path: one item tower call for it) gives what `call` gives.
    history = model.history_sequence(data)
    assert history[0].shape == (BATCH, HISTORY, DIM)
    np.testing.assert_array_equal(history[1], data[features.HISTORY_INDICES] > 0)
    np.testing.assert_allclose(model.user_tower(data, history=history), user, rtol=1e-5, atol=1e-6)
    scored = model.score(user, item, history=history)
    np.testing.assert_allclose(scored["click"], outputs["click"], rtol=1e-5, atol=1e-6)


def test_a_transformer_tower_with_target_attention_learns():
    model = build(user_tower="transformer", target_attention=True)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    data = batch()
    model(data)
    sequence_weights = (model.user_tower.sequence_encoder.trainable_variables
                        + model.target_attention.trainable_variables)
    initial = [np.asarray(v) for v in sequence_weights]
    losses = model.fit(tf.data.Dataset.from_tensors(data), epochs=30, verbose=0).history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses
    # The sequence encoder and the attention train with the rest.
    for variable, value in zip(sequence_weights, initial, strict=True):
        assert not np.allclose(np.asarray(variable), value), variable.path
