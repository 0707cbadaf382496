"""SparseEmbedding: Keras' Embedding's values and gradients, through a row-wise read of the table."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from models.embedding import SparseEmbedding

IDS = np.array([[3, 0, 3], [7, 1, 0]], dtype="int32")


def _pair() -> tuple[SparseEmbedding, keras.layers.Embedding]:
    sparse, plain = SparseEmbedding(8, 4), keras.layers.Embedding(8, 4)
    sparse.build(), plain.build()
    plain.set_weights(sparse.get_weights())
    return sparse, plain


def test_lookup_and_gradient_match_keras_embedding():
    sparse, plain = _pair()
    results = []
    for layer in (sparse, plain):
        with tf.GradientTape() as tape:
            outputs = layer(IDS)
            loss = tf.reduce_sum(outputs * tf.range(1.0, 5.0))
        results.append((outputs, tape.gradient(loss, layer.trainable_variables[0].value)))
    (sparse_out, sparse_grad), (plain_out, plain_grad) = results
    np.testing.assert_array_equal(sparse_out.numpy(), plain_out.numpy())
    assert isinstance(sparse_grad, tf.IndexedSlices)  # the optimizer's sparse path gets a sparse gradient
    np.testing.assert_allclose(tf.convert_to_tensor(sparse_grad).numpy(), tf.convert_to_tensor(plain_grad).numpy())


def test_the_graph_gathers_from_the_variable_without_reading_the_table():
    sparse, plain = _pair()

    def ops_of(layer: keras.layers.Layer) -> set[str]:
        graph = tf.function(layer).get_concrete_function(tf.TensorSpec([None, 3], tf.int32)).graph
        return {op.type for op in graph.get_operations()}

    assert "ResourceGather" in ops_of(sparse) and "ReadVariableOp" not in ops_of(sparse)
    assert "ReadVariableOp" in ops_of(plain)  # what copies the whole table when the optimizer writes it


def test_mixed_precision_casts_the_rows_and_keeps_the_table_float32():
    layer = SparseEmbedding(8, 4, dtype="mixed_float16")
    outputs = layer(IDS)
    assert outputs.dtype == tf.float16 and layer.embeddings.dtype == "float32"
    np.testing.assert_allclose(outputs.numpy(), layer.embeddings.numpy()[IDS].astype("float16"))


def test_config_round_trips():
    layer = SparseEmbedding(8, 4, name="user_id_embedding")
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, SparseEmbedding) and restored.get_config() == layer.get_config()
