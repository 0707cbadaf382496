"""TF Serving's REST predict API over a loaded SavedModel: request parsing, the call, response shaping.

Row format (`instances`) and columnar format (`inputs`), `signature_name`, and TF Serving-style errors:
every problem with a request raises RequestError, which the server answers with a 400 and `{"error": ...}`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2

DEFAULT_SIGNATURE = "serving_default"


class RequestError(ValueError):
    """The request is malformed or does not fit the signature; answered with a 400."""


def signature_specs(function: Any) -> tuple[dict[str, tf.TensorSpec], dict[str, tf.TensorSpec]]:
    """(inputs, outputs) of a loaded signature, as name -> TensorSpec."""
    return dict(function.structured_input_signature[1]), dict(function.structured_outputs)


def _spec_json(spec: tf.TensorSpec) -> dict[str, Any]:
    dims = [{"size": str(-1 if d is None else d)} for d in spec.shape.as_list()] if spec.shape.rank is not None else []
    return {"dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum), "tensor_shape": {"dim": dims},
            "name": spec.name or ""}


def signature_metadata(signatures: dict[str, Any]) -> dict[str, Any]:
    """The `signature_def` part of TF Serving's metadata response."""
    result = {}
    for name, function in signatures.items():
        inputs, outputs = signature_specs(function)
        result[name] = {
            "inputs": {key: _spec_json(spec) for key, spec in inputs.items()},
            "outputs": {key: _spec_json(spec) for key, spec in outputs.items()},
            "method_name": "tensorflow/serving/predict",
        }
    return result


def _to_tensor(name: str, value: Any, spec: tf.TensorSpec) -> tf.Tensor:
    try:
        tensor = tf.constant(value, dtype=spec.dtype)
    except (ValueError, TypeError) as error:
        kind = "strings" if spec.dtype == tf.string else spec.dtype.name
        raise RequestError(f"input '{name}': expected {kind} of shape {spec.shape.as_list()} (None: any size); "
                           f"lists of unequal length or values of another type cannot be converted: "
                           f"{str(error).splitlines()[0]}") from None
    if not spec.shape.is_compatible_with(tensor.shape):
        raise RequestError(f"input '{name}': shape {tensor.shape.as_list()} does not match the signature's "
                           f"{spec.shape.as_list()}")
    return tensor


def _columns_from_instances(instances: Any, inputs: dict[str, tf.TensorSpec]) -> dict[str, Any]:
    if not isinstance(instances, list) or not instances:
        raise RequestError("'instances' must be a non-empty list")
    if len(inputs) == 1 and not all(isinstance(row, dict) for row in instances):
        return {next(iter(inputs)): instances}
    columns: dict[str, list[Any]] = {name: [] for name in inputs}
    for index, row in enumerate(instances):
        if not isinstance(row, dict):
            raise RequestError(f"instances[{index}]: expected an object with the inputs {sorted(inputs)}")
        if set(row) != set(inputs):
            raise RequestError(f"instances[{index}]: has inputs {sorted(row)}, the signature takes {sorted(inputs)}")
        for name in inputs:
            columns[name].append(row[name])
    return columns


def _jsonable(value: np.ndarray) -> Any:
    if value.dtype == object:
        return np.vectorize(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v,
                            otypes=[object])(value).tolist()
    return value.tolist()


def predict(signatures: dict[str, Any], body: bytes, max_batch_size: int) -> dict[str, Any]:
    """Answers one `:predict` request body; raises RequestError for anything wrong with it."""
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RequestError(f"malformed JSON: {error}") from None
    if not isinstance(request, dict):
        raise RequestError("the request must be a JSON object")
    name = request.get("signature_name", DEFAULT_SIGNATURE)
    if name not in signatures:
        raise RequestError(f"Serving signature name: \"{name}\" not found in signature def; "
                           f"available: {sorted(signatures)}")
    function = signatures[name]
    inputs, _ = signature_specs(function)
    row_format = "instances" in request
    if row_format == ("inputs" in request):
        raise RequestError("the request needs exactly one of 'instances' (row format) or 'inputs' (columnar)")
    if row_format:
        columns = _columns_from_instances(request["instances"], inputs)
    else:
        columns = request["inputs"]
        if not isinstance(columns, dict):
            if len(inputs) != 1:
                raise RequestError(f"'inputs' must be an object with the inputs {sorted(inputs)}")
            columns = {next(iter(inputs)): columns}
        if set(columns) != set(inputs):
            raise RequestError(f"'inputs' has {sorted(columns)}, the signature takes {sorted(inputs)}")
    tensors = {key: _to_tensor(key, columns[key], spec) for key, spec in inputs.items()}
    for key, tensor in tensors.items():
        if tensor.shape.rank and tensor.shape[0] > max_batch_size:
            raise RequestError(f"input '{key}': batch of {tensor.shape[0]} exceeds the maximum of {max_batch_size}")
        if tensor.shape.rank and tensor.shape[0] == 0:
            raise RequestError(f"input '{key}': empty batch")
    try:
        outputs = {key: value.numpy() for key, value in function(**tensors).items()}
    except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError, ValueError, TypeError) as error:
        message = getattr(error, "message", str(error)).splitlines()[0]
        raise RequestError(f"the model rejected the request: {message}") from None
    if not row_format:
        if len(outputs) == 1:
            return {"outputs": _jsonable(next(iter(outputs.values())))}
        return {"outputs": {key: _jsonable(value) for key, value in outputs.items()}}
    rows = len(next(iter(outputs.values())))
    if len(outputs) == 1:
        return {"predictions": _jsonable(next(iter(outputs.values())))}
    return {"predictions": [{key: _jsonable(np.asarray(value[i])) for key, value in outputs.items()}
                            for i in range(rows)]}
