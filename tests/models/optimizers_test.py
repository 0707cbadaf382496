"""LazyAdam: Adam's arithmetic on the rows a sparse gradient touches, nothing on the others."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from models import optimizers
from pipeline import config as config_lib

TABLE = np.arange(15, dtype="float32").reshape(5, 3) / 10


def _sparse(indices: list[int], seed: int) -> tf.IndexedSlices:
    values = np.random.default_rng(seed).normal(size=(len(indices), TABLE.shape[1])).astype("float32")
    return tf.IndexedSlices(tf.constant(values), tf.constant(indices), tf.constant(TABLE.shape))


def _train(optimizer: keras.optimizers.Optimizer, gradients: list) -> tuple[keras.Variable, keras.optimizers.Optimizer]:
    variable = keras.Variable(TABLE)
    optimizer.build([variable])
    for gradient in gradients:
        optimizer.apply([gradient], [variable])
    return variable, optimizer


@pytest.mark.parametrize("indices", [[0, 1, 2, 3, 4], [3, 0, 3, 4, 1, 2, 0]], ids=["unique", "repeated"])
def test_when_every_row_is_in_every_batch_it_is_adam_on_the_dense_gradient(indices):
    gradients = [_sparse(indices, seed) for seed in range(4)]
    lazy, _ = _train(optimizers.LazyAdam(0.05), gradients)
    dense, _ = _train(keras.optimizers.Adam(0.05), [tf.convert_to_tensor(gradient) for gradient in gradients])
    np.testing.assert_allclose(lazy.numpy(), dense.numpy(), rtol=1e-5, atol=1e-5)  # float32, ops reordered
    assert not np.allclose(lazy.numpy(), TABLE)


def test_rows_outside_the_batch_keep_their_values_and_moments():
    first = _sparse([0, 1, 2, 3, 4], seed=0)
    lazy, optimizer = _train(optimizers.LazyAdam(0.05), [first, _sparse([1, 3], seed=1)])
    after_first, _ = _train(optimizers.LazyAdam(0.05), [first])
    untouched = [0, 2, 4]
    np.testing.assert_array_equal(lazy.numpy()[untouched], after_first.numpy()[untouched])
    momentum = optimizer._momentums[0].numpy()
    assert np.abs(momentum[untouched]).min() > 0  # set by the first step, not decayed by the second
    moved = [1, 3]
    assert np.all(np.abs(lazy.numpy()[moved] - after_first.numpy()[moved]) > 1e-4)
    # Dense Adam moves every row at every step, seen or not: the difference this optimizer makes.
    dense, _ = _train(keras.optimizers.Adam(0.05), [first, _sparse([1, 3], seed=1)])
    assert np.all(np.abs(dense.numpy()[untouched] - after_first.numpy()[untouched]) > 1e-4)


def test_dense_gradients_get_adams_update():
    gradients = [tf.constant(np.random.default_rng(seed).normal(size=TABLE.shape).astype("float32"))
                 for seed in range(3)]
    lazy, _ = _train(optimizers.LazyAdam(0.05), gradients)
    dense, _ = _train(keras.optimizers.Adam(0.05), gradients)
    np.testing.assert_array_equal(lazy.numpy(), dense.numpy())


@pytest.mark.parametrize("jit_compile", [False, True])
def test_an_embedding_model_learns_with_it_compiled_or_not(jit_compile):
    keras.utils.set_random_seed(0)
    ids = keras.Input((1,), dtype="int32")
    model = keras.Model(ids, keras.layers.Flatten()(keras.layers.Embedding(100, 1)(ids)))
    model.compile(optimizer=optimizers.LazyAdam(0.05), loss="mse", jit_compile=jit_compile)
    x = np.arange(100, dtype="int32").reshape(-1, 1)
    y = (x % 2).astype("float32")  # each row's own target: only sparse updates can fit it
    model.fit(x, y, batch_size=10, epochs=60, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.1 * np.var(y)  # the best constant's loss is the variance


def test_config_round_trips_and_names_are_checked():
    optimizer = optimizers.create("lazy_adam", 0.02)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, optimizers.LazyAdam)
    assert restored.get_config() == optimizer.get_config()
    assert type(optimizers.create("adam", 0.02)) is keras.optimizers.Adam
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        optimizers.create("sgd", 0.02)
    with pytest.raises(ValueError, match="AMSGrad"):
        optimizers.LazyAdam(amsgrad=True)


def test_the_config_accepts_exactly_the_optimizers_there_are():
    for name in optimizers.OPTIMIZERS:
        assert config_lib.from_dict({"training": {"optimizer": name}}).training.optimizer == name
    choices = r"training.optimizer: must be one of \['lazy_adam', 'adam'\], got 'sgd'"
    with pytest.raises(config_lib.ConfigError, match=choices):
        config_lib.from_dict({"training": {"optimizer": "sgd"}})
    with pytest.raises(config_lib.ConfigError,
                       match="training.optimizer: the tfrs baseline trains without it, got 'adam'"):
        config_lib.from_dict({"model": {"type": "tfrs"}, "training": {"optimizer": "adam"}})
