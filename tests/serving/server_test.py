"""`mtrec serve` over HTTP on loopback: TF Serving's REST API, 400s for bad requests, hot swap of versions."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.error
import urllib.request

import pytest

from pipeline import cli
from serving import client, versions
from serving.server import ModelServer


def _request(url: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server(exported_model, tmp_path_factory):
    _, model_dir = exported_model
    base = tmp_path_factory.mktemp("serving")
    shutil.copytree(model_dir, base / "1")
    running = ModelServer(str(base), port=0, max_batch_size=8, poll_seconds=0.2).start()
    yield running, base, f"http://127.0.0.1:{running.port}"
    running.stop()


def test_model_status_and_metadata(server):
    _, _, url = server
    status, body = _request(f"{url}/v1/models/mtrec")
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
    status, body = _request(f"{url}/v1/models/mtrec/metadata")
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "rank", "retrieve", "user_embedding", "item_embedding"} <= set(signatures)
    assert signatures["retrieve"]["inputs"]["k"]["dtype"] == "DT_INT32"


def test_rank_in_row_and_columnar_format(server):
    _, _, url = server
    row = {"signature_name": "rank", "instances": [
        {"user_id": "user_00001", "history": ["item_00002", ""], "item_ids": ["item_00003", "item_00004"]},
        {"user_id": "someone new", "history": ["", ""], "item_ids": ["item_00005", "unknown item"]}]}
    status, body = _request(f"{url}/v1/models/mtrec:predict", json.dumps(row).encode())
    assert status == 200
    assert len(body["predictions"]) == 2 and len(body["predictions"][1]["click"]) == 2
    columnar = {"signature_name": "rank", "inputs": {
        "user_id": ["user_00001"], "history": [["item_00002", ""]], "item_ids": [["item_00003", "item_00004"]]}}
    status, body = _request(f"{url}/v1/models/mtrec:predict", json.dumps(columnar).encode())
    assert status == 200
    assert body["outputs"]["click"][0] == pytest.approx(_first_row_click(url), rel=1e-5)


def _first_row_click(url: str) -> list[float]:
    row = {"signature_name": "rank", "instances": [
        {"user_id": "user_00001", "history": ["item_00002", ""], "item_ids": ["item_00003", "item_00004"]}]}
    return _request(f"{url}/v1/models/mtrec:predict", json.dumps(row).encode())[1]["predictions"][0]["click"]


def test_recommend_client_and_command(server, capsys):
    _, _, url = server
    items = client.recommend(url, "user_00001", k=5, history=["item_00002"])
    assert len(items) == 5 and "item_00002" not in [item for item, _ in items]
    assert [score for _, score in items] == sorted((score for _, score in items), reverse=True)
    assert cli.main(["recommend", "--user", "user_00001", "--k", "3", "--url", url]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "malformed JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"signature_name": "nope", "instances": [1]}', 'signature name: "nope" not found'),
    (b'{"signature_name": "rank"}', "exactly one of 'instances'"),
    (b'{"signature_name": "rank", "inputs": {"user_id": ["u"]}}', "the signature takes"),
    (b'{"signature_name": "rank", "instances": [{"user_id": "u"}]}', "instances[0]: has inputs"),
    (b'{"signature_name": "rank", "inputs": {"user_id": ["u"], "history": [["a"], ["b", "c"]], '
     b'"item_ids": [["i"]]}}', "input 'history'"),
    (b'{"signature_name": "retrieve", "inputs": {"user_id": ["u"], "history": [[""]], "k": ["ten"], '
     b'"exclude_history": [true]}}', "input 'k'"),
    (b'{"signature_name": "rank", "inputs": {"user_id": [1], "history": [[""]], "item_ids": [["i"]]}}',
     "input 'user_id': expected strings"),
    (b'{"signature_name": "item_embedding", "inputs": {"item_ids": []}}', "empty batch"),
    (b'{"signature_name": "item_embedding", "inputs": {"item_ids": ["a","b","c","d","e","f","g","h","i"]}}',
     "exceeds the maximum of 8"),
])
def test_bad_requests_get_a_400_with_a_precise_message(server, body, message):
    _, _, url = server
    status, reply = _request(f"{url}/v1/models/mtrec:predict", body)
    assert status == 400, reply
    assert message in reply["error"]


def test_unknown_model_or_version_is_a_404(server):
    _, _, url = server
    assert _request(f"{url}/v1/models/other:predict", b"{}")[0] == 404
    assert _request(f"{url}/v1/models/mtrec/versions/99:predict", b"{}")[0] == 404


def test_hot_swap_under_concurrent_requests_drops_nothing(server):
    running, base, url = server
    body = json.dumps({"signature_name": "item_embedding", "inputs": {"item_ids": ["item_00001"]}}).encode()
    failures, answered, stop = [], [], threading.Event()

    def hammer():
        while not stop.is_set():
            status, reply = _request(f"{url}/v1/models/mtrec:predict", body)
            (answered if status == 200 else failures).append(reply)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    # Published as the Pusher does: staged beside the served version, then renamed into place whole.
    published = versions.publish(str(base / "1"), str(base))
    deadline = time.time() + 60
    while running.repository.current.version != int(published) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert running.repository.current.version == int(published)
    assert _request(f"{url}/v1/models/mtrec")[1]["model_version_status"][0]["version"] == published
    assert failures == [] and len(answered) > 10


def test_a_broken_version_is_skipped_and_the_served_one_stays(server):
    running, base, url = server
    served = running.repository.current.version
    broken = base / str(served + 1)  # newer than the served version, so the server tries it
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    running.repository.refresh()
    assert running.repository.current.version == served
    assert _request(f"{url}/v1/models/mtrec")[0] == 200
    shutil.rmtree(broken)


def test_a_version_damaged_after_it_was_published_is_not_served(server):
    """A flipped byte in the variables still loads in TensorFlow; the manifest is what catches it."""
    running, base, url = server
    served = running.repository.current.version
    published = versions.publish(str(base / str(served)), str(base))
    variables = base / published / "variables" / "variables.data-00000-of-00001"
    data = bytearray(variables.read_bytes())
    data[len(data) // 2] ^= 0xFF
    variables.write_bytes(bytes(data))
    assert versions.damage(str(base / published)) == [
        "variables/variables.data-00000-of-00001: changed (size or SHA-256 differs)"]
    running.repository.refresh()
    assert running.repository.current.version == served
    assert _request(f"{url}/v1/models/mtrec")[1]["model_version_status"][0]["version"] == str(served)
