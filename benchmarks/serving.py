"""`mtrec benchmark serving`: latency and throughput of `rank` and `retrieve`, in process and over HTTP.

Everything is measured in one run on one machine, request by request in turn, so the ratios are what to read:
- `retrieve` (user tower + scoring the whole catalogue + top-k, one call) against the reference, the same
  user tower (`user_embedding`) followed by TensorFlow Recommenders' BruteForce index over the very same item
  embeddings;
- the same requests through `mtrec serve` over loopback HTTP against the in-process call (HTTP overhead).
Catalogues of 10k and 100k items; `rank` scores 100 candidates. Latencies are of sequential single-user
requests after a warm-up; throughput is requests per second of that sequential client. Beside the default model
(mean user tower), the same data's model with the transformer user tower and target attention answers the same
requests in the same turns (`*_sequence_model`): what reading the history through the language model costs.
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import reports, small_model
from components.example_gen import input_contract
from pipeline.data import synthetic

CATALOGUES = (10_000, 100_000)
K = 100
CANDIDATES = 100
TARGET_HTTP_OVERHEAD_MS = 2.0
SEQUENCE_MODEL = {"user_tower": "transformer", "target_attention": True}


def summary(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "throughput_per_s": round(len(ms) / (ms.sum() / 1000), 1), "requests": len(ms)}


def _timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def interleaved(calls: dict[str, Callable[[], Any]], requests: int, warmup: int = 10) -> dict[str, list[float]]:
    """Times the calls in turn, request by request, so machine noise hits every path alike."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(requests):
        for name, call in calls.items():
            seconds[name].append(_timed(call))
    return seconds


def http_predict(port: int, body: dict) -> Callable[[], Any]:
    """A client on one kept-alive connection, as production clients of TF Serving are."""
    data = json.dumps(body).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call() -> Any:
        connection.request("POST", "/v1/models/mtrec:predict", body=data,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {payload[:200]!r}")
        return payload

    return call


def measure_catalogue(num_items: int, requests: int, root: str) -> dict[str, Any]:
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from models.tfrs_baseline import tfrs  # TFRS on tf_keras, even after tf.keras resolved to Keras 3
    from serving.server import ModelServer

    data = synthetic.SyntheticConfig(num_users=40, num_items=num_items, events_per_user=10, seed=11)
    started = time.time()
    data_dir, model_dir = small_model.build(os.path.join(root, str(num_items)), data)
    build_seconds = time.time() - started
    _, sequence_dir = small_model.build(os.path.join(root, f"{num_items}-sequence"), data,
                                        model_options=SEQUENCE_MODEL)
    sequence_model = tf.saved_model.load(sequence_dir)
    model = tf.saved_model.load(model_dir)
    retrieve, rank = model.signatures["retrieve"], model.signatures["rank"]
    user_embedding, item_embedding = model.signatures["user_embedding"], model.signatures["item_embedding"]
    user = {"user_id": tf.constant(["user_00001"]), "history": tf.constant([["item_00002", "item_00003"]])}
    catalogue = tf.constant(list(input_contract.read_items(os.path.join(data_dir, input_contract.ITEMS_FILE))))
    embeddings = tf.concat([item_embedding(item_ids=catalogue[start:start + 4096])["item_embedding"]
                            for start in range(0, int(catalogue.shape[0]), 4096)], axis=0)
    brute_force = tfrs.layers.factorized_top_k.BruteForce(k=K)
    brute_force.index(embeddings, identifiers=catalogue)
    candidates = tf.constant([[f"item_{i:05d}" for i in range(CANDIDATES)]])

    # The same answer from both retrieval paths, before timing them.
    ours = retrieve(k=tf.constant([K]), exclude_history=tf.constant([False]), **user)
    theirs = brute_force(user_embedding(**user)["user_embedding"])
    overlap = len(set(ours["item_ids"].numpy()[0]) & set(theirs[1].numpy()[0])) / K

    results: dict[str, Any] = {"catalogue_items": int(catalogue.shape[0]), "build_seconds": round(build_seconds, 1),
                               "top_k_overlap_with_reference": overlap}
    server = ModelServer(os.path.dirname(model_dir), port=0)
    os.rename(model_dir, os.path.join(os.path.dirname(model_dir), "1"))
    server.start()
    try:
        history = [["item_00002", "item_00003"]]
        seconds = interleaved({
            "retrieve_in_process": lambda: retrieve(k=tf.constant([K]), exclude_history=tf.constant([True]), **user),
            "reference_user_embedding_plus_tfrs_brute_force": lambda: brute_force(
                user_embedding(**user)["user_embedding"]),
            "retrieve_http": http_predict(server.port, {"signature_name": "retrieve", "inputs": {
                "user_id": ["user_00001"], "history": history, "k": [K], "exclude_history": [True]}}),
            "rank_in_process": lambda: rank(item_ids=candidates, **user),
            "rank_http": http_predict(server.port, {"signature_name": "rank", "inputs": {
                "user_id": ["user_00001"], "history": history, "item_ids": candidates.numpy().astype(str).tolist()}}),
            "retrieve_in_process_sequence_model": lambda: sequence_model.signatures["retrieve"](
                k=tf.constant([K]), exclude_history=tf.constant([True]), **user),
            "rank_in_process_sequence_model": lambda: sequence_model.signatures["rank"](item_ids=candidates, **user),
        }, requests)
    finally:
        server.stop()
    results.update({name: summary(values) for name, values in seconds.items()})
    # The HTTP overhead is the median of per-request differences between neighbouring calls.
    results["http_overhead_p50_ms"] = {
        name: round(float(np.median(np.subtract(seconds[f"{name}_http"], seconds[f"{name}_in_process"]))) * 1000, 3)
        for name in ("retrieve", "rank")}
    reference = results["reference_user_embedding_plus_tfrs_brute_force"]["p50_ms"]
    results["retrieve_vs_reference_p50_ratio"] = round(results["retrieve_in_process"]["p50_ms"] / reference, 3)
    results["sequence_model_vs_default_p50_ratio"] = {
        name: round(results[f"{name}_in_process_sequence_model"]["p50_ms"] / results[f"{name}_in_process"]["p50_ms"],
                    3) for name in ("retrieve", "rank")}
    return results


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Serving benchmark",
        "",
        f"Machine: {report['machine']}. Sequential single-user requests after warm-up; {K} results for "
        f"`retrieve`, {CANDIDATES} candidates for `rank`. The reference is `user_embedding` followed by "
        "TFRS BruteForce over the same item embeddings.",
        "",
        "| catalogue | path | p50 ms | p99 ms | requests/s |",
        "|---|---|---|---|---|",
    ]
    for result in report["catalogues"]:
        for path in ("retrieve_in_process", "reference_user_embedding_plus_tfrs_brute_force", "retrieve_http",
                     "rank_in_process", "rank_http", "retrieve_in_process_sequence_model",
                     "rank_in_process_sequence_model"):
            timing = result[path]
            lines.append(f"| {result['catalogue_items']:,} | {path} | {timing['p50_ms']} | {timing['p99_ms']} | "
                         f"{timing['throughput_per_s']} |")
    lines += ["", "| catalogue | retrieve / reference (p50) | HTTP overhead p50 ms (retrieve, rank) | "
                  "top-k overlap with reference |", "|---|---|---|---|"]
    for result in report["catalogues"]:
        overhead = result["http_overhead_p50_ms"]
        lines.append(f"| {result['catalogue_items']:,} | {result['retrieve_vs_reference_p50_ratio']} | "
                     f"{overhead['retrieve']}, {overhead['rank']} | {result['top_k_overlap_with_reference']} |")
    lines += ["", "The sequence model (transformer user tower + target attention) against the default model, in "
                  "process (p50 ratio):", "", "| catalogue | retrieve | rank |", "|---|---|---|"]
    for result in report["catalogues"]:
        ratio = result["sequence_model_vs_default_p50_ratio"]
        lines.append(f"| {result['catalogue_items']:,} | {ratio['retrieve']} | {ratio['rank']} |")
    lines += ["", "Targets: `retrieve` no slower than the reference (ratio <= 1); HTTP overhead under "
                  f"{TARGET_HTTP_OVERHEAD_MS} ms at p50. Met: " + ", ".join(
                      f"{k}: {'yes' if v else 'no'}" for k, v in report["targets_met"].items()), ""]
    return "\n".join(lines)


def run(output_dir: str, requests: int = 200, catalogues: tuple[int, ...] = CATALOGUES) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as root:
        results = [measure_catalogue(size, requests, root) for size in catalogues]
    report = {
        "benchmark": "serving",
        "machine": reports.machine(),
        "catalogues": results,
        "targets_met": {
            "retrieve_not_slower_than_reference": all(r["retrieve_vs_reference_p50_ratio"] <= 1.0 for r in results),
            "http_overhead_under_2ms_p50": all(max(r["http_overhead_p50_ms"].values()) < TARGET_HTTP_OVERHEAD_MS
                                               for r in results),
        },
    }
    reports.write(report, output_dir, "serving", _markdown(report))
    return report
