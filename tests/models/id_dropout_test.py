"""IdDropout: only in training, the configured share of ids goes to the OOV index, padding never, config round trip."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from models.id_dropout import IdDropout

OOV = 1001


def _ids() -> np.ndarray:
    ids = np.arange(1, 201 * 50 + 1).reshape(201, 50) % 1000 + 1  # 1..1000, never the OOV index
    ids[::2, -10:] = 0  # padding
    return ids


def test_outside_training_ids_pass_unchanged():
    layer = IdDropout(0.5, OOV, seed=0)
    ids = _ids()
    np.testing.assert_array_equal(np.asarray(layer(ids)), ids)
    np.testing.assert_array_equal(np.asarray(layer(ids, training=False)), ids)


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_in_training_the_configured_share_goes_to_the_oov_index(rate):
    ids = _ids()
    dropped = np.asarray(IdDropout(rate, OOV, seed=7)(ids, training=True))
    padding = ids == 0
    np.testing.assert_array_equal(dropped[padding], 0)  # padding stays padding
    replaced = dropped != ids
    assert np.all(dropped[replaced] == OOV)
    # 9,045 non-padding ids: the share's standard error is below 0.005, so 0.015 is three of them.
    assert abs(replaced[~padding].mean() - rate) < 0.015


def test_a_zero_rate_drops_nothing_in_training():
    ids = _ids()
    np.testing.assert_array_equal(np.asarray(IdDropout(0.0, OOV)(ids, training=True)), ids)


def test_each_training_call_draws_anew():
    layer, ids = IdDropout(0.3, OOV, seed=1), _ids()
    assert not np.array_equal(np.asarray(layer(ids, training=True)), np.asarray(layer(ids, training=True)))


@pytest.mark.parametrize(("rate", "oov_index", "message"), [(1.0, OOV, "`rate` = 1.0"), (-0.1, OOV, "`rate` = -0.1"),
                                                            (0.2, 0, "`oov_index` = 0")])
def test_invalid_arguments_are_quoted(rate, oov_index, message):
    with pytest.raises(ValueError, match=message):
        IdDropout(rate, oov_index)


def test_config_round_trip():
    layer = IdDropout(0.25, OOV, seed=3, name="item_id_dropout")
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, IdDropout) and restored.get_config() == layer.get_config()
    assert (restored.rate, restored.oov_index, restored.seed) == (0.25, OOV, 3)
