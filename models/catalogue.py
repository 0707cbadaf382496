"""ItemCatalogue: every catalogue item's transformed content, found by item key, inside the model.

A user's history arrives as item ids. The id embedding alone says nothing about an item the vocabulary does not
know (a new item reads the OOV row), so a sequence user tower and target attention read each history position
through the item tower: id, text, categories and declared item features. The model carries the catalogue's
content as constant tables, keyed by the hash Transform writes for every history position (features.HISTORY_KEYS),
so the lookup needs no string ops, runs in the serving graph as it runs in training, and compiles with XLA.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf


def find_sorted(sorted_keys: Any, keys: Any) -> tuple[tf.Tensor, tf.Tensor]:
    """(row, found) of each of the 1-D int64 `keys` in the ascending, non-empty 1-D `sorted_keys`: a binary search,
    so it needs no hash table and compiles with XLA. A key it lacks gets some valid row and found False."""
    rows = tf.minimum(tf.searchsorted(sorted_keys, keys), tf.shape(sorted_keys, out_type=tf.int32)[0] - 1)
    return rows, tf.equal(tf.gather(sorted_keys, rows), keys)


class ItemCatalogue(keras.layers.Layer):
    """Item key -> the item's transformed content (the item tower's inputs but the id index).

    A key the catalogue lacks (padding, an item added after training) reads the unknown item's content, as serving
    encodes an unknown item: no text, no categories, missing features.

    Args:
        keys: int array (N,). Every catalogue item's key (features.ITEM_KEY), N >= 1.
        content: dict. Item tower input name -> array of N + 1 rows: the N items' values, in the order of `keys`,
            then the unknown item's.
    """

    def __init__(self, keys: np.ndarray, content: dict[str, np.ndarray], **kwargs: Any):
        super().__init__(trainable=False, **kwargs)
        keys = np.asarray(keys, np.int64)
        if not len(keys):
            raise ValueError("An ItemCatalogue needs at least one item.")
        for name, values in content.items():
            if len(values) != len(keys) + 1:
                raise ValueError(f"Content `{name}` has {len(values)} rows; the catalogue's {len(keys)} items and "
                                 "the unknown item need one each.")
        order = np.argsort(keys, kind="stable")
        rows = np.append(order, len(keys))
        self.size = len(keys)
        self.names = list(content)
        self.keys = self._constant("keys", keys[order])
        self.tables = [self._constant(name, np.asarray(values)[rows]) for name, values in content.items()]

    def _constant(self, name: str, value: np.ndarray) -> Any:
        dtype = "int64" if np.issubdtype(value.dtype, np.integer) else "float32"
        weight = self.add_weight(shape=value.shape, initializer="zeros", dtype=dtype, trainable=False,
                                 name=f"catalogue_{name}")
        weight.assign(value.astype(dtype))
        return weight

    def rows(self, keys: Any) -> tf.Tensor:
        """The catalogue row of each key (any shape); the unknown item's row (N) for a key it lacks."""
        keys = tf.cast(keys, tf.int64)
        rows, found = find_sorted(self.keys, tf.reshape(keys, [-1]))
        return tf.reshape(tf.where(found, rows, self.size), tf.shape(keys))

    def call(self, keys: Any) -> dict[str, tf.Tensor]:
        """The content of each key, flattened: (number of keys, ...) per input name."""
        rows = tf.reshape(self.rows(keys), [-1])
        return {name: tf.gather(table, rows) for name, table in zip(self.names, self.tables, strict=True)}
