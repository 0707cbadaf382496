"""Shared fixtures: small generated datasets, so tests never need the real data."""

from __future__ import annotations

import pytest

from pipeline.data import synthetic

SMALL = synthetic.SyntheticConfig(num_users=60, num_items=40, events_per_user=12, seed=3)
# The small model's variants (benchmarks.small_model.build's `model_options`), by the name of their fixture.
MODEL_VARIANTS = {"exported_model": {}, "sequence_model": {"user_tower": "transformer", "target_attention": True},
                  "attention_model": {"target_attention": True}}


def _small_model(name, tmp_path_factory):
    from benchmarks import small_model

    return small_model.build(str(tmp_path_factory.mktemp(name)), model_options=MODEL_VARIANTS[name])


@pytest.fixture
def small_data_dir(tmp_path):
    synthetic.generate(str(tmp_path / "data"), SMALL)
    return str(tmp_path / "data")


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory):
    """(data dir, SavedModel dir) of a small real model with every serving signature (built once, ~40 s)."""
    return _small_model("exported_model", tmp_path_factory)


@pytest.fixture(scope="session")
def sequence_model(tmp_path_factory):
    """The small model with the transformer user tower and target attention: the history read through the item
    tower from the model's catalogue (built once, ~40 s)."""
    return _small_model("sequence_model", tmp_path_factory)


@pytest.fixture(scope="session")
def attention_model(tmp_path_factory):
    """The small model with target attention over the mean user tower (built once, ~40 s)."""
    return _small_model("attention_model", tmp_path_factory)


@pytest.fixture(scope="session")
def featured_model(tmp_path_factory):
    """(data dir, SavedModel dir) of a small real model reading the generated data's declared features: user
    features, an item feature and context features (built once, ~40 s)."""
    from benchmarks import small_model

    return small_model.build(str(tmp_path_factory.mktemp("featured_model")),
                             declared=synthetic.declared_features())
