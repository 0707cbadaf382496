"""Shared fixtures: small generated datasets, so tests never need the real data."""

from __future__ import annotations

import pytest

from pipeline.data import synthetic

SMALL = synthetic.SyntheticConfig(num_users=60, num_items=40, events_per_user=12, seed=3)


@pytest.fixture
def small_data_dir(tmp_path):
    synthetic.generate(str(tmp_path / "data"), SMALL)
    return str(tmp_path / "data")
