"""A small run of the serving benchmark harness: it measures every path and agrees with the reference."""

from __future__ import annotations

import json

from benchmarks import serving


def test_small_serving_benchmark_writes_results(tmp_path):
    report = serving.run(str(tmp_path), requests=5, catalogues=(500,))
    (result,) = report["catalogues"]
    assert result["catalogue_items"] == 500
    # Our retrieve signature and TFRS BruteForce over the same embeddings return the same top 100.
    assert result["top_k_overlap_with_reference"] == 1.0
    for path in ("retrieve_in_process", "reference_user_embedding_plus_tfrs_brute_force", "retrieve_http",
                 "rank_in_process", "rank_http"):
        assert result[path]["requests"] == 5 and 0 < result[path]["p50_ms"] <= result[path]["p99_ms"]
    assert json.loads((tmp_path / "serving.json").read_text()) == report
    assert "| 500 | retrieve_http |" in (tmp_path / "serving.md").read_text()
