"""Optimizers whose step costs what the batch touches, not what the embedding tables hold.

Keras' Adam turns an embedding's sparse gradient dense: every step decays the moments of every row of every table
and moves every row. A step then costs time proportional to the tables, which grow with the number of users and
items, so an epoch over a log costs about the square of its size. LazyAdam (TF Addons' LazyAdam, TF1's
LazyAdamOptimizer) updates, for a sparse gradient, only the rows in the batch; rows not seen keep their moments.
Dense gradients get Adam's own update, so the towers and heads train exactly as with Adam.

Rows a batch names more than once get their gradients summed before the moments see them, as a dense gradient
would. (Keras' Adam squares each occurrence's gradient before the sum, so its second moment differs from dense
Adam's whenever a user or item appears twice in a batch.)
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mtrec")
class LazyAdam(keras.optimizers.Adam):
    """Adam with sparse updates for sparse gradients. The TensorFlow backend only (embedding gradients reach
    `update_step` as tf.IndexedSlices, under a loss-scale optimizer too). No AMSGrad. Weight decay, if set, is
    Keras' own, applied to every row at every step."""

    def __init__(self, learning_rate: float = 0.001, **kwargs: Any):
        if kwargs.get("amsgrad"):
            raise ValueError("LazyAdam has no AMSGrad variant: use Adam")
        super().__init__(learning_rate=learning_rate, **kwargs)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        # One row per distinct index: a batch (or replicas' gradients gathered) can name a row more than once.
        rows, position = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), position, tf.shape(rows)[0])
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = tf.cast(learning_rate, dtype) * tf.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)

        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        m_rows = beta_1 * tf.gather(m.value, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v.value, rows) + (1 - beta_2) * tf.square(values)
        self.assign(m, tf.IndexedSlices(m_rows, rows))
        self.assign(v, tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))


OPTIMIZERS = {"lazy_adam": LazyAdam, "adam": keras.optimizers.Adam}


def create(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """The optimizer `training.optimizer` names."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}: one of {list(OPTIMIZERS)}")
    return OPTIMIZERS[name](learning_rate)
