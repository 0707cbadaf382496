"""Shared fixtures: small generated datasets, so tests never need the real data."""

from __future__ import annotations

import pytest

from pipeline.data import synthetic

SMALL = synthetic.SyntheticConfig(num_users=60, num_items=40, events_per_user=12, seed=3)


@pytest.fixture
def small_data_dir(tmp_path):
    synthetic.generate(str(tmp_path / "data"), SMALL)
    return str(tmp_path / "data")


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory):
    """(data dir, SavedModel dir) of a small real model with every serving signature (built once, ~40 s)."""
    from benchmarks import small_model

    return small_model.build(str(tmp_path_factory.mktemp("exported_model")))


@pytest.fixture(scope="session")
def featured_model(tmp_path_factory):
    """(data dir, SavedModel dir) of a small real model reading the generated data's declared features: user
    features, an item feature and context features (built once, ~40 s)."""
    from benchmarks import small_model

    return small_model.build(str(tmp_path_factory.mktemp("featured_model")),
                             declared=synthetic.declared_features())
