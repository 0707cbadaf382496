"""A small run of the serving benchmark harness: it measures every path and agrees with the reference."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# As `mtrec benchmark serving` runs it: in a fresh process whose tf.keras is already Keras 3 when the benchmark
# reaches for TFRS (a Keras 2 library), which is what broke the command once while an in-process test passed.
SCRIPT = """
import sys
import tensorflow as tf
assert tf.keras.version().startswith("3."), tf.keras.version()
from benchmarks import serving
serving.run(sys.argv[1], requests=5, catalogues=(500,))
"""


def test_small_serving_benchmark_writes_results(tmp_path):
    # Without the variable that models.tfrs_baseline sets in this test process, as a user's shell has it.
    env = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "serving.json").read_text())
    (result,) = report["catalogues"]
    assert result["catalogue_items"] == 500
    # Our retrieve signature and TFRS BruteForce over the same embeddings return the same top 100.
    assert result["top_k_overlap_with_reference"] == 1.0
    for path in ("retrieve_in_process", "reference_user_embedding_plus_tfrs_brute_force", "retrieve_http",
                 "rank_in_process", "rank_http", "retrieve_in_process_sequence_model",
                 "rank_in_process_sequence_model"):
        assert result[path]["requests"] == 5 and 0 < result[path]["p50_ms"] <= result[path]["p99_ms"]
    for name in ("retrieve", "rank"):
        assert result["sequence_model_vs_default_p50_ratio"][name] == pytest.approx(
            result[f"{name}_in_process_sequence_model"]["p50_ms"] / result[f"{name}_in_process"]["p50_ms"], abs=1e-3)
    markdown = (tmp_path / "serving.md").read_text()
    assert "| 500 | retrieve_http |" in markdown and "| 500 | rank_in_process_sequence_model |" in markdown
