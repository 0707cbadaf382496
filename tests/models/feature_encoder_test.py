"""FeatureEncoder: an embedding per categorical feature, the mean over a multi-categorical one's values, numeric
(value, present) pairs, all concatenated."""

from __future__ import annotations

import numpy as np

from models import features
from models.feature_encoder import FeatureEncoder
from models.features import Feature

DEVICE = Feature("device", features.EVENTS_SOURCE, features.CATEGORICAL)
TAGS = Feature("tags", features.ITEMS_SOURCE, features.MULTI_CATEGORICAL, max_values=3)
AGE = Feature("age", features.USERS_SOURCE, features.NUMERIC)


def test_encodes_each_type_and_masks_padding():
    encoder = FeatureEncoder([DEVICE, TAGS, AGE], {"device": 4, "tags": 5}, embedding_dim=2)
    inputs = {DEVICE.input_name: np.array([1, 0]), TAGS.input_name: np.array([[1, 2, 0], [0, 0, 0]]),
              AGE.input_name: np.array([[0.5, 1.0], [0.0, 0.0]], np.float32)}
    out = np.asarray(encoder(inputs))
    assert out.shape == (2, 2 + 2 + 2)
    devices = np.asarray(encoder.embeddings["device"].embeddings)
    tags = np.asarray(encoder.embeddings["tags"].embeddings)
    np.testing.assert_allclose(out[:, :2], devices[[1, 0]], rtol=1e-6)  # index 0 (missing) has a row of its own
    np.testing.assert_allclose(out[0, 2:4], tags[[1, 2]].mean(0), rtol=1e-6)  # padding is left out of the mean
    np.testing.assert_allclose(out[1, 2:4], [0.0, 0.0])  # no values: nothing to average
    np.testing.assert_allclose(out[:, 4:], inputs[AGE.input_name])
