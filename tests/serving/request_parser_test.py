"""The `:predict` request parser: every malformed request is a RequestError (a 400) naming its fault, never a 500.

Table-driven cases for each kind of fault, unknown ids answered normally, and hypothesis properties: arbitrary
bodies raise nothing but RequestError, and well-formed generated requests become tensors of the signature.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import re
import shutil
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from components.example_gen import executor, input_contract
from models import features
from serving import rest
from serving.server import ModelServer

MAX_BATCH = 8
PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def signatures(exported_model) -> dict[str, Any]:
    _, model_dir = exported_model
    model = tf.saved_model.load(model_dir)
    yield dict(model.signatures)  # `model` stays referenced, and so its variables alive, until the module ends


def _predict(signatures: dict[str, Any], request: Any) -> dict[str, Any]:
    body = request if isinstance(request, bytes) else json.dumps(request).encode()
    return rest.predict(signatures, body, MAX_BATCH)


def _retrieve(**overrides: Any) -> dict[str, Any]:
    inputs = {"user_id": ["u"], "history": [[""]], "k": [3], "exclude_history": [True]}
    return {"signature_name": "retrieve", "inputs": {**inputs, **overrides}}


def _rank_row(**overrides: Any) -> dict[str, Any]:
    return {"user_id": "u", "history": ["", ""], "item_ids": ["item_00001"], **overrides}


BAD_REQUESTS = [
    # The body itself.
    (b"", "malformed JSON: the request body is empty"),
    (b"{not json", "malformed JSON: Expecting property name"),
    (b'{"inputs": {"item_ids": ["a"]}', "malformed JSON"),
    (b"\xff\xfe\xfa", "malformed JSON"),
    (b'{"signature_name": "item_embedding", "inputs": {"item_ids": ["caf\xe9"]}}', "malformed JSON: not valid UTF-8"),
    (b"[" * 100_000, "malformed JSON: nested too deeply"),
    (b'{"inputs": [' + b"9" * 5000 + b"]}", "malformed JSON: Exceeds the limit"),
    (b'{"signature_name": "retrieve", "inputs": {"user_id": ["u"], "history": [[""]], "k": [NaN], '
     b'"exclude_history": [true]}}', "malformed JSON: NaN is not a JSON number"),
    (b'{"signature_name": "retrieve", "inputs": {"k": [-Infinity]}}', "malformed JSON: -Infinity is not a JSON number"),
    (b"[1, 2]", "the request must be a JSON object, got a list"),
    (b"null", "the request must be a JSON object, got null"),
    (b'"instances"', "the request must be a JSON object, got a string"),
    # Its keys.
    ({"signature_name": "rank", "instance": [_rank_row()]}, "unknown key(s) ['instance'] in the request"),
    ({"signature_name": "rank"}, "exactly one of 'instances' (row format) or 'inputs' (columnar)"),
    ({"signature_name": "rank", "instances": [_rank_row()], "inputs": {}}, "exactly one of 'instances'"),
    ({"signature_name": "nope", "instances": [1]}, 'Serving signature name: "nope" not found in signature def'),
    ({"signature_name": ["rank"], "instances": [1]}, "'signature_name' must be a string, got a list"),
    ({"signature_name": None, "instances": [1]}, "'signature_name' must be a string, got null"),
    ({"signature_name": 0, "instances": [1]}, "'signature_name' must be a string, got an integer"),
    # Row format.
    ({"signature_name": "rank", "instances": []}, "'instances' must be a non-empty list, got an empty list"),
    ({"signature_name": "rank", "instances": None}, "'instances' must be a non-empty list, got null"),
    ({"signature_name": "rank", "instances": _rank_row()}, "'instances' must be a non-empty list, got an object"),
    ({"signature_name": "rank", "instances": [_rank_row(), "u"]},
     "instances[1]: expected an object with the inputs ['history', 'item_ids', 'user_id'], got a string"),
    ({"signature_name": "rank", "instances": [{"user_id": "u"}]},
     "instances[0]: has inputs ['user_id'], the signature takes ['history', 'item_ids', 'user_id'] "
     "(missing ['history', 'item_ids'])"),
    ({"signature_name": "rank", "instances": [_rank_row(items=["i"])]}, "(unknown ['items'])"),
    ({"signature_name": "rank", "instances": [_rank_row(), _rank_row(history=["a"])]},
     "input 'history': ragged lists: instances[1].history has 1 values but instances[0].history has 2"),
    ({"signature_name": "rank", "instances": [_rank_row(user_id=7)]},
     "input 'user_id': expected strings in a list of shape [None], but instances[0].user_id is an integer"),
    ({"signature_name": "rank", "instances": [_rank_row(item_ids="item_00001")]},
     "input 'item_ids': expected a list of shape [None, None] (None: any size), but instances[0].item_ids is "
     "a string"),
    ({"signature_name": "item_embedding", "instances": ["a", None]},
     "input 'item_ids': expected strings in a list of shape [None], but instances[1] is null"),
    ({"signature_name": "item_embedding", "instances": ["a"] * (MAX_BATCH + 1)},
     f"'instances': batch of {MAX_BATCH + 1} exceeds the maximum of {MAX_BATCH}"),
    # Columnar format: names.
    ({"signature_name": "rank", "inputs": {"user_id": ["u"]}},
     "'inputs' has ['user_id'], the signature takes ['history', 'item_ids', 'user_id'] "
     "(missing ['history', 'item_ids'])"),
    (_retrieve(K=[3]), "(unknown ['K'])"),
    ({"signature_name": "rank", "inputs": ["u"]},
     "'inputs' must be an object with the inputs ['history', 'item_ids', 'user_id'], got a list"),
    ({"signature_name": "item_embedding", "inputs": {}}, "'inputs' has [], the signature takes ['item_ids']"),
    # Columnar format: batches.
    ({"signature_name": "item_embedding", "inputs": {"item_ids": []}}, "input 'item_ids': empty batch"),
    ({"signature_name": "item_embedding", "inputs": []}, "input 'item_ids': empty batch"),
    ({"signature_name": "item_embedding", "inputs": {"item_ids": ["i"] * (MAX_BATCH + 1)}},
     f"input 'item_ids': batch of {MAX_BATCH + 1} exceeds the maximum of {MAX_BATCH}"),
    (_retrieve(user_id=["u", "v"]), "the inputs have different batch sizes (exclude_history 1, history 1, k 1, "
                                    "user_id 2)"),
    (_retrieve(k=[3, 4]), "the inputs have different batch sizes"),
    # Columnar format: shapes and dtypes.
    ({"signature_name": "item_embedding", "inputs": {"item_ids": "a"}},
     "input 'item_ids': expected a list of shape [None] (None: any size), but got a string"),
    ({"signature_name": "item_embedding", "inputs": {"item_ids": None}},
     "input 'item_ids': expected a list of shape [None] (None: any size), but got null"),
    ({"signature_name": "item_embedding", "inputs": {"item_ids": [["a"]]}},
     "input 'item_ids': expected strings in a list of shape [None], but item_ids[0] is a list"),
    (_retrieve(history=[""]), "input 'history': expected a list of shape [None, None] (None: any size), but "
                              "history[0] is a string"),
    (_retrieve(history=[[["a"]]]), "input 'history': expected strings in a list of shape [None, None], but "
                                   "history[0][0] is a list"),
    ({"signature_name": "rank", "inputs": {"user_id": ["u", "v"], "history": [["a"], ["b", "c"]],
                                           "item_ids": [["i"], ["j"]]}},
     "input 'history': ragged lists: history[1] has 2 values but history[0] has 1; pad the rows to one length"),
    ({"signature_name": "rank", "inputs": {"user_id": [1], "history": [[""]], "item_ids": [["i"]]}},
     "input 'user_id': expected strings in a list of shape [None], but user_id[0] is an integer"),
    ({"signature_name": "item_embedding", "inputs": {"item_ids": ["a", 1.5]}},
     "input 'item_ids': expected strings in a list of shape [None], but item_ids[1] is a floating-point number"),
    ({"signature_name": "item_embedding", "inputs": {"item_ids": [True]}}, "item_ids[0] is a boolean"),
    ({"signature_name": "item_embedding", "inputs": {"item_ids": [{"id": "a"}]}}, "item_ids[0] is an object"),
    ({"signature_name": "item_embedding", "inputs": {"item_ids": ["a", None]}},
     "input 'item_ids': expected strings in a list of shape [None], but item_ids[1] is null"),
    (b'{"signature_name": "item_embedding", "inputs": {"item_ids": ["\\ud800"]}}',
     "input 'item_ids': item_ids[0] is not valid Unicode (an unpaired surrogate)"),
    ({"signature_name": "item_embedding", "inputs": {"item_ids": [{"b64": "not base64!"}]}},
     "input 'item_ids': item_ids[0]: 'b64' is not valid base64"),
    (_retrieve(k=["ten"]), "input 'k': expected integers (int32) in a list of shape [None], but k[0] is a string"),
    (_retrieve(k=[True]), "input 'k': expected integers (int32) in a list of shape [None], but k[0] is a boolean"),
    (_retrieve(k=[2.5]), "input 'k': expected integers (int32) in a list of shape [None], but k[0] is a "
                         "floating-point number"),
    (_retrieve(k=[None]), "input 'k': expected integers (int32) in a list of shape [None], but k[0] is null"),
    (_retrieve(k=[2**31]), "input 'k': k[0] = 2147483648 is out of the range of int32"),
    (b'{"signature_name": "retrieve", "inputs": {"user_id": ["u"], "history": [[""]], "k": [1e400], '
     b'"exclude_history": [true]}}', "input 'k': expected integers (int32) in a list of shape [None], but k[0] is a "
                                     "floating-point number"),
    (_retrieve(exclude_history=[1]), "input 'exclude_history': expected booleans (true/false) in a list of shape "
                                     "[None], but exclude_history[0] is an integer"),
    (_retrieve(exclude_history=["true"]), "exclude_history[0] is a string"),
    # Faults only the model finds: the model's own message, not TF's trace.
    (_retrieve(k=[-1]), "the model rejected the request: Need k >= 0, got -1"),
    ({"signature_name": "serving_default", "inputs": {"examples": ["not a tf.Example"]}},
     "the model rejected the request: Could not parse example input"),
]


@pytest.mark.parametrize(("request_", "fragment"), BAD_REQUESTS)
def test_bad_request_is_a_request_error_naming_its_fault(signatures, request_, fragment):
    with pytest.raises(rest.RequestError) as raised:
        _predict(signatures, request_)
    assert fragment in str(raised.value)


def test_unknown_ids_are_answered_normally(signatures):
    """Unknown users, items and history entries map to the OOV embeddings: a normal answer, not an error."""
    ranked = _predict(signatures, {"signature_name": "rank", "instances": [
        {"user_id": "a user never seen", "history": ["no such item", ""], "item_ids": ["nothing", "item_00001"]}]})
    assert len(ranked["predictions"]) == 1 and len(ranked["predictions"][0]["click"]) == 2
    assert all(0 < click < 1 for click in ranked["predictions"][0]["click"])
    retrieved = _predict(signatures, _retrieve(user_id=["someone new"], history=[["unknown", "ids"]], k=[5]))
    assert len(retrieved["outputs"]["item_ids"][0]) == 5
    embedded = _predict(signatures, {"signature_name": "item_embedding", "inputs": ["no such item", "üñí©ødé"]})
    assert np.isfinite(embedded["outputs"]).all() and len(embedded["outputs"]) == 2
    user = _predict(signatures, {"signature_name": "user_embedding", "inputs": {
        "user_id": ["", "new"], "history": [[], []]}})
    assert np.isfinite(user["outputs"]).all() and len(user["outputs"]) == 2


def test_rank_with_no_candidates_answers_every_instance(signatures):
    answer = _predict(signatures, {"signature_name": "rank", "inputs": {
        "user_id": ["a", "b"], "history": [[""], [""]], "item_ids": [[], []]}})
    assert answer["outputs"]["click"] == [[], []]


def test_serving_default_takes_b64_encoded_examples(signatures, exported_model):
    """TF Serving's `{"b64": ...}` carries binary strings such as serialized tf.Examples."""
    data_dir, _ = exported_model
    items = input_contract.read_items(f"{data_dir}/{input_contract.ITEMS_FILE}")
    item = items[sorted(items)[0]]
    example = executor.to_example(input_contract.Event(
        "user_00001", item.item_id, 0, {features.CLICKED: 1, features.RATING: 4.0}), item, ["item_00002"])
    encoded = {"b64": base64.b64encode(example.SerializeToString()).decode()}
    rows = _predict(signatures, {"instances": [encoded, encoded]})
    columns = _predict(signatures, {"signature_name": "", "inputs": {"examples": [encoded]}})
    direct = signatures["serving_default"](examples=tf.constant([example.SerializeToString()]))
    assert len(rows["predictions"]) == 2
    assert rows["predictions"][0]["click"] == pytest.approx(float(direct["click"].numpy()[0]), rel=1e-5)
    assert columns["outputs"]["click"][0] == pytest.approx(float(direct["click"].numpy()[0]), rel=1e-5)


def test_b64_and_plain_strings_give_the_same_tensor(signatures):
    b64 = {"b64": base64.b64encode("item_0000é".encode()).decode()}
    _, tensors, _ = rest.parse_request(signatures, json.dumps({"signature_name": "rank", "inputs": {
        "user_id": ["u", "v"], "history": [["item_0000é"], [b64]], "item_ids": [[b64], ["x"]]}}).encode(), MAX_BATCH)
    assert tensors["history"].numpy().tolist() == [["item_0000é".encode()]] * 2
    assert tensors["item_ids"].numpy().tolist() == [["item_0000é".encode()], [b"x"]]


def test_row_and_columnar_formats_give_the_same_tensors(signatures):
    rows = [_rank_row(user_id="u1", history=["a", "b"]), _rank_row(user_id="u2", history=["c", ""])]
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    _, from_rows, row_format = rest.parse_request(signatures, json.dumps(
        {"signature_name": "rank", "instances": rows}).encode(), MAX_BATCH)
    _, from_columns, columnar = rest.parse_request(signatures, json.dumps(
        {"signature_name": "rank", "inputs": columns}).encode(), MAX_BATCH)
    assert row_format and not columnar
    for name, tensor in from_rows.items():
        np.testing.assert_array_equal(tensor.numpy(), from_columns[name].numpy())


# --- over HTTP: the connection survives a request answered before its body was read ---------------------------

@pytest.fixture(scope="module")
def server_url(exported_model, tmp_path_factory):
    _, model_dir = exported_model
    base = tmp_path_factory.mktemp("parser_serving")
    shutil.copytree(model_dir, base / "1")
    running = ModelServer(str(base), port=0, max_batch_size=MAX_BATCH).start()
    yield running.port
    running.stop()


def _post(connection: http.client.HTTPConnection, path: str, body: bytes,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    connection.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def test_http_bad_requests_are_400s_and_early_answers_close_the_connection(server_url):
    good = json.dumps({"signature_name": "item_embedding", "inputs": ["item_00001"]}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server_url, timeout=60)
    try:
        assert _post(connection, "/v1/models/mtrec:predict", b'{"inputs": [1]}')[0] == 400
        assert _post(connection, "/v1/models/mtrec:predict", good)[0] == 200  # same kept-alive connection
        # Answered before the body is read: the unread body must not become the next request.
        status, reply = _post(connection, "/v1/models/other:predict", b'{"inputs": ["x"]}')
        assert status == 404 and "Servable not found" in reply["error"]
        assert _post(connection, "/v1/models/mtrec:predict", good)[0] == 200  # http.client reconnects
        connection.close()
        connection.putrequest("POST", "/v1/models/mtrec:predict")
        connection.putheader("Content-Length", "-5")
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 400 and "'-5' is not a non-negative integer" in json.loads(response.read())["error"]
    finally:
        connection.close()


# --- properties ---------------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)
SIGNATURE_NAMES = st.sampled_from(["serving_default", "rank", "retrieve", "user_embedding", "item_embedding", "",
                                   "nope"])
INPUT_NAMES = st.sampled_from(["user_id", "history", "item_ids", "k", "exclude_history", "examples", "other"])
# Values near the real ones, so that generated requests get past the first checks and into the deeper ones.
NEAR_VALUES = st.recursive(
    st.sampled_from(["", "u", "item_00001", True, False, 0, 3, -1, 2**31, 1.5, None, {"b64": "AA=="}]) | JSON_VALUES,
    lambda children: st.lists(children, max_size=3), max_leaves=12)
NEAR_REQUESTS = st.fixed_dictionaries(
    {}, optional={"signature_name": SIGNATURE_NAMES | JSON_VALUES,
                  "inputs": st.dictionaries(INPUT_NAMES, NEAR_VALUES, max_size=5) | NEAR_VALUES,
                  "instances": st.lists(st.dictionaries(INPUT_NAMES, NEAR_VALUES, max_size=5) | NEAR_VALUES,
                                        max_size=MAX_BATCH + 2)})


def _only_request_errors(signatures: dict[str, Any], body: bytes) -> None:
    """Anything but a RequestError fails the test; `--hypothesis-show-statistics` shows which checks were hit."""
    try:
        rest.predict(signatures, body, MAX_BATCH)
    except rest.RequestError as error:
        assert str(error)  # a message, whatever the fault
        event(re.sub(r"\W+", " ", str(error)).split(" in a list")[0][:40])
    else:
        event("answered")


@PROPERTY
@given(body=st.binary(max_size=200))
def test_any_bytes_give_an_answer_or_a_request_error(signatures, body):
    _only_request_errors(signatures, body)


@PROPERTY
@given(value=JSON_VALUES)
def test_any_json_value_gives_an_answer_or_a_request_error(signatures, value):
    _only_request_errors(signatures, json.dumps(value).encode())


@PROPERTY
@given(request=NEAR_REQUESTS)
def test_any_near_miss_request_gives_an_answer_or_a_request_error(signatures, request):
    _only_request_errors(signatures, json.dumps(request).encode())


IDS = st.text(max_size=12)  # any Unicode (no unpaired surrogates: those are not valid JSON text)


@st.composite
def _well_formed(draw: st.DrawFn, signatures: dict[str, Any], min_width: int = 0) -> tuple[str, dict[str, Any], int]:
    """(signature name, columns, batch size) of a valid request for one of the named-input signatures; rows of
    2-D inputs (history, item_ids) have `min_width` to 4 values."""
    name = draw(st.sampled_from(["rank", "retrieve", "user_embedding", "item_embedding"]))
    inputs, _ = rest.signature_specs(signatures[name])
    batch = draw(st.integers(1, MAX_BATCH))
    widths = {spec_name: draw(st.integers(min_width, 4)) for spec_name in inputs}
    columns = {}
    for input_name, spec in inputs.items():
        if spec.dtype == tf.string:
            leaf = IDS
        elif spec.dtype == tf.bool:
            leaf = st.booleans()
        else:
            leaf = st.integers(0, 40)
        row = st.lists(leaf, min_size=widths[input_name], max_size=widths[input_name]) if spec.shape.rank == 2 else leaf
        columns[input_name] = draw(st.lists(row, min_size=batch, max_size=batch))
    return name, columns, batch


def _request(name: str, columns: dict[str, Any], batch: int, row_format: bool) -> dict[str, Any]:
    if not row_format:
        return {"signature_name": name, "inputs": columns}
    return {"signature_name": name, "instances": [{key: column[i] for key, column in columns.items()}
                                                  for i in range(batch)]}


@PROPERTY
@given(data=st.data(), row_format=st.booleans(), whole_column=st.booleans(), fault=NEAR_VALUES)
def test_a_well_formed_request_with_one_fault_gives_an_answer_or_a_request_error(signatures, data, row_format,
                                                                                  whole_column, fault):
    """One input, or one row of it, replaced by another value: deeper than a random request usually gets."""
    name, columns, batch = data.draw(_well_formed(signatures))
    key = data.draw(st.sampled_from(sorted(columns)))
    if whole_column:
        columns[key] = fault
        row_format = False
    else:
        columns[key][data.draw(st.integers(0, batch - 1))] = fault
    _only_request_errors(signatures, json.dumps(_request(name, columns, batch, row_format)).encode())


def _expected_array(values: Any, dtype: tf.DType) -> np.ndarray:
    if dtype == tf.string:
        return np.vectorize(lambda text: text.encode("utf-8"), otypes=[object])(np.array(values, dtype=object))
    return np.array(values, dtype=dtype.as_numpy_dtype)


@PROPERTY
@given(data=st.data(), row_format=st.booleans())
def test_well_formed_requests_become_tensors_of_the_signature(signatures, data, row_format):
    name, columns, batch = data.draw(_well_formed(signatures))
    body = json.dumps(_request(name, columns, batch, row_format)).encode()
    parsed_name, tensors, parsed_row_format = rest.parse_request(signatures, body, MAX_BATCH)
    inputs, _ = rest.signature_specs(signatures[name])
    assert parsed_name == name and parsed_row_format == row_format and set(tensors) == set(inputs)
    for key, tensor in tensors.items():
        assert tensor.dtype == inputs[key].dtype and tensor.shape[0] == batch
        assert inputs[key].shape.is_compatible_with(tensor.shape)
        expected = _expected_array(columns[key], tensor.dtype)
        if expected.size:
            np.testing.assert_array_equal(tensor.numpy(), expected)


@settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_well_formed_requests_are_answered_with_one_row_per_instance(signatures, data):
    # min_width=1: requests with no candidates are test_rank_with_no_candidates_answers_every_instance.
    name, columns, batch = data.draw(_well_formed(signatures, min_width=1))
    answer = _predict(signatures, {"signature_name": name, "inputs": columns})["outputs"]
    outputs = answer if isinstance(answer, dict) else {"output": answer}
    for value in outputs.values():
        assert len(value) == batch
        flat = np.array(value, dtype=object).ravel()
        assert all(not isinstance(v, float) or math.isfinite(v) for v in flat)


def test_null_is_a_missing_number_where_the_signature_takes_floats():
    """A numeric context feature of `rank` may be missing: JSON null becomes NaN, which the model reads as missing;
    where the signature takes integers or strings null stays a fault (BAD_REQUESTS)."""
    converter = rest._Converter("price", tf.TensorSpec([None], tf.float32), "")
    converted = converter.convert([1.5, None])
    assert converted[0] == 1.5 and math.isnan(converted[1])
