"""TF Serving's REST predict API over a loaded SavedModel: request parsing, the call, response shaping.

Row format (`instances`) and columnar format (`inputs`), `signature_name`, and TF Serving-style errors:
every problem with a request raises RequestError, which the server answers with a 400 and `{"error": ...}`.
"""

from __future__ import annotations

import base64
import json
import math
import re
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


_REQUEST_KEYS = ("signature_name", "instances", "inputs")
# JSON's kinds of value, as a message names them.
_KINDS = ((type(None), "null"), (bool, "a boolean"), (int, "an integer"), (float, "a floating-point number"),
          (str, "a string"), (list, "a list"), (dict, "an object"))


def _kind(value: Any) -> str:
    return next((name for kind, name in _KINDS if isinstance(value, kind)), type(value).__name__)


def _expected(dtype: tf.DType) -> str:
    if dtype == tf.string:
        return "strings"
    if dtype.is_bool:
        return "booleans (true/false)"
    if dtype.is_integer:
        return f"integers ({dtype.name})"
    if dtype.is_floating:
        return f"numbers ({dtype.name})"
    return f"{dtype.name} values"


def _is_b64(value: Any) -> bool:
    """TF Serving's encoding of binary strings: `{"b64": "<base64>"}`."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


class _Converter:
    """Checks one input's nested lists against its TensorSpec and converts them for `tf.constant`.

    Every fault is a RequestError that names the input and the offending element as the request spells it:
    `history[1][0]` (columnar), `instances[1].history[0]` (rows of named inputs) or `instances[1][0]` (rows of
    a signature's only input).
    """

    def __init__(self, name: str, spec: tf.TensorSpec, root: str):
        self.name, self.dtype, self.root = name, spec.dtype, root
        self.dims = spec.shape.as_list()
        # DType's comparisons and min/max are slow enough to matter per element: looked up once.
        self.is_string, self.is_bool = spec.dtype == tf.string, spec.dtype.is_bool
        self.is_integer, self.is_floating = spec.dtype.is_integer, spec.dtype.is_floating
        self.low, self.high = (spec.dtype.min, spec.dtype.max) if self.is_integer or self.is_floating else (0, 0)
        self.first_length: dict[int, tuple[int, tuple[int, ...]]] = {}  # depth -> (length, index) of the first list

    def path(self, index: tuple[int, ...]) -> str:
        """`root` is "" (columnar), "instances." (rows of named inputs) or "instances" (rows of one input)."""
        if self.root == "instances":
            return "instances" + "".join(f"[{i}]" for i in index)
        if self.root and index:
            return f"instances[{index[0]}].{self.name}" + "".join(f"[{i}]" for i in index[1:])
        return (self.root.rstrip(".") or self.name) + "".join(f"[{i}]" for i in index)

    def fail(self, message: str) -> RequestError:
        return RequestError(f"input '{self.name}': {message}")

    def convert(self, value: Any, index: tuple[int, ...] = ()) -> Any:
        depth = len(index)
        if depth == len(self.dims):
            return self.leaf(value, index)
        if not isinstance(value, list):
            raise self.fail(f"expected a list of shape {self.dims} (None: any size), but {self.path(index)} is "
                            f"{_kind(value)}")
        if self.dims[depth] is not None and len(value) != self.dims[depth]:
            raise self.fail(f"{self.path(index)} has {len(value)} values, the signature's shape {self.dims} "
                            f"needs {self.dims[depth]}")
        length, first = self.first_length.setdefault(depth, (len(value), index))
        if len(value) != length:
            raise self.fail(f"ragged lists: {self.path(index)} has {len(value)} values but {self.path(first)} has "
                            f"{length}; pad the rows to one length")
        if depth == len(self.dims) - 1:
            leaves = self.fast_leaves(value)
            if leaves is not None:
                return leaves
        return [self.convert(item, (*index, position)) for position, item in enumerate(value)]

    def fast_leaves(self, values: list[Any]) -> list[Any] | None:
        """A row of plain valid leaves at C speed, or None: then `leaf` checks each and names the fault."""
        if not values:
            return values
        types = set(map(type, values))
        if self.is_string and types == {str}:
            try:
                "".join(values).encode("utf-8")  # only an unpaired surrogate fails
            except UnicodeEncodeError:
                return None
            return values
        if self.is_bool and types == {bool}:
            return values
        if self.is_integer and types == {int} and self.low <= min(values) and max(values) <= self.high:
            return values
        return None

    def wrong_type(self, value: Any, index: tuple[int, ...]) -> RequestError:
        return self.fail(f"expected {_expected(self.dtype)} in a list of shape {self.dims}, but {self.path(index)} "
                         f"is {_kind(value)}")

    def leaf(self, value: Any, index: tuple[int, ...]) -> Any:
        dtype = self.dtype
        if self.is_string:
            if isinstance(value, str):
                try:
                    return value.encode("utf-8")
                except UnicodeEncodeError:
                    raise self.fail(f"{self.path(index)} is not valid Unicode (an unpaired surrogate)") from None
            if _is_b64(value):
                try:
                    return base64.b64decode(value["b64"], validate=True)
                except ValueError:
                    raise self.fail(f"{self.path(index)}: 'b64' is not valid base64") from None
            raise self.wrong_type(value, index)
        if isinstance(value, bool) != self.is_bool:
            raise self.wrong_type(value, index)
        if self.is_bool:
            return value
        if self.is_integer:
            if not isinstance(value, int):
                raise self.wrong_type(value, index)
            if not self.low <= value <= self.high:
                raise self.fail(f"{self.path(index)} = {value} is out of the range of {dtype.name}")
            return value
        if self.is_floating:
            if value is None:  # a missing value (e.g. a numeric context feature of `rank`), as NaN
                return math.nan
            if not isinstance(value, int | float):
                raise self.wrong_type(value, index)
            try:
                finite = math.isfinite(value) and abs(value) <= self.high
            except OverflowError:  # an integer too large for a float
                finite = False
            if not finite:
                raise self.fail(f"{self.path(index)} = {value} is not a finite {dtype.name}")
            return value
        return value  # another dtype: tf.constant decides


def _to_tensor(name: str, value: Any, spec: tf.TensorSpec, root: str, max_batch_size: int) -> tf.Tensor:
    """`value` checked and converted; `root` says how the request spelled it (see _Converter.path)."""
    if spec.shape.rank is None:  # unknown rank: no structure to check against, tf.constant decides
        converted = value
    else:
        converter = _Converter(name, spec, root)
        if converter.dims and not root:
            if not isinstance(value, list):
                raise converter.fail(f"expected a list of shape {converter.dims} (None: any size), but got "
                                     f"{_kind(value)}")
            if not value:
                raise converter.fail("empty batch (send at least one row)")
            if len(value) > max_batch_size:
                raise converter.fail(f"batch of {len(value)} exceeds the maximum of {max_batch_size}")
        converted = converter.convert(value)
    try:
        tensor = tf.constant(converted, dtype=spec.dtype)
    except (ValueError, TypeError) as error:
        raise RequestError(f"input '{name}': expected {_expected(spec.dtype)} of shape {spec.shape.as_list()}: "
                           f"{str(error).splitlines()[0]}") from None
    if not spec.shape.is_compatible_with(tensor.shape):
        raise RequestError(f"input '{name}': shape {tensor.shape.as_list()} does not match the signature's "
                           f"{spec.shape.as_list()} (None: any size)")
    return tensor


def _name_problems(given: set[str], expected: set[str]) -> str:
    parts = [f"{label} {sorted(names)}" for label, names in (("missing", expected - given),
                                                            ("unknown", given - expected)) if names]
    return "; ".join(parts)


def _columns_from_instances(instances: Any, inputs: dict[str, tf.TensorSpec],
                            max_batch_size: int) -> tuple[dict[str, Any], str]:
    """The rows as columns, and the root of their paths in messages ("instances." or "instances")."""
    if not isinstance(instances, list) or not instances:
        got = "an empty list" if isinstance(instances, list) else _kind(instances)
        raise RequestError(f"'instances' must be a non-empty list, got {got}")
    if len(instances) > max_batch_size:
        raise RequestError(f"'instances': batch of {len(instances)} exceeds the maximum of {max_batch_size}")
    if len(inputs) == 1 and not any(isinstance(row, dict) and not _is_b64(row) for row in instances):
        return {next(iter(inputs)): instances}, "instances"
    columns: dict[str, list[Any]] = {name: [] for name in inputs}
    for index, row in enumerate(instances):
        if not isinstance(row, dict):
            raise RequestError(f"instances[{index}]: expected an object with the inputs {sorted(inputs)}, "
                               f"got {_kind(row)}")
        if set(row) != set(inputs):
            raise RequestError(f"instances[{index}]: has inputs {sorted(row)}, the signature takes {sorted(inputs)} "
                               f"({_name_problems(set(row), set(inputs))})")
        for name in inputs:
            columns[name].append(row[name])
    return columns, "instances."


def _columns_from_inputs(columns: Any, inputs: dict[str, tf.TensorSpec]) -> dict[str, Any]:
    if not isinstance(columns, dict) or _is_b64(columns):
        if len(inputs) != 1:
            raise RequestError(f"'inputs' must be an object with the inputs {sorted(inputs)}, got {_kind(columns)}")
        return {next(iter(inputs)): columns}
    if set(columns) != set(inputs):
        raise RequestError(f"'inputs' has {sorted(columns)}, the signature takes {sorted(inputs)} "
                           f"({_name_problems(set(columns), set(inputs))})")
    return columns


def _reject_constant(name: str) -> Any:
    raise RequestError(f"malformed JSON: {name} is not a JSON number")


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        raise RequestError("malformed JSON: the request body is empty")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RequestError:
        raise
    except json.JSONDecodeError as error:
        raise RequestError(f"malformed JSON: {error}") from None
    except UnicodeDecodeError as error:
        raise RequestError(f"malformed JSON: not valid UTF-8 ({error.reason} at byte {error.start})") from None
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        raise RequestError(f"malformed JSON: {error}") from None
    except RecursionError:
        raise RequestError("malformed JSON: nested too deeply") from None


def parse_request(signatures: dict[str, Any], body: bytes,
                  max_batch_size: int) -> tuple[str, dict[str, tf.Tensor], bool]:
    """(signature name, input tensors, row format?) of a `:predict` body; raises RequestError for any fault."""
    request = _parse_json(body)
    if not isinstance(request, dict):
        raise RequestError(f"the request must be a JSON object, got {_kind(request)}")
    unknown = sorted(set(request) - set(_REQUEST_KEYS))
    if unknown:
        raise RequestError(f"unknown key(s) {unknown} in the request; it takes 'signature_name' and one of "
                           f"'instances' or 'inputs'")
    name = request.get("signature_name", "")
    if not isinstance(name, str):
        raise RequestError(f"'signature_name' must be a string, got {_kind(name)}")
    name = name or DEFAULT_SIGNATURE  # as TF Serving: empty means the default
    if name not in signatures:
        raise RequestError(f"Serving signature name: \"{name}\" not found in signature def; "
                           f"available: {sorted(signatures)}")
    inputs, _ = signature_specs(signatures[name])
    row_format = "instances" in request
    if row_format == ("inputs" in request):
        raise RequestError("the request needs exactly one of 'instances' (row format) or 'inputs' (columnar)")
    if row_format:
        columns, root = _columns_from_instances(request["instances"], inputs, max_batch_size)
    else:
        columns, root = _columns_from_inputs(request["inputs"], inputs), ""
    tensors = {key: _to_tensor(key, columns[key], spec, root, max_batch_size) for key, spec in inputs.items()}
    batch_first = all(spec.shape.rank and spec.shape[0] is None for spec in inputs.values())
    sizes = {key: tensor.shape[0] for key, tensor in tensors.items()}
    if batch_first and len(set(sizes.values())) > 1:
        listed = ", ".join(f"{key} {size}" for key, size in sorted(sizes.items()))
        raise RequestError(f"the inputs have different batch sizes ({listed}); every input is batch-first, so "
                           f"all need the same number of rows")
    return name, tensors, row_format


def _model_error(error: Exception) -> str:
    """The informative line of a TF runtime error (not 'Graph execution error:' or the node's trace)."""
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[")
    for line in getattr(error, "message", str(error)).splitlines():
        line = re.sub(r"\s*(\[\[\{\{|\[Op:).*$", "", line).strip()
        if line and not line.startswith(noise):
            return line
    return type(error).__name__


def _jsonable(value: np.ndarray) -> Any:
    if value.dtype == object:
        return np.vectorize(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v,
                            otypes=[object])(value).tolist()
    return value.tolist()


def predict(signatures: dict[str, Any], body: bytes, max_batch_size: int) -> dict[str, Any]:
    """Answers one `:predict` request body; raises RequestError for anything wrong with it."""
    name, tensors, row_format = parse_request(signatures, body, max_batch_size)
    function = signatures[name]
    try:
        outputs = {key: value.numpy() for key, value in function(**tensors).items()}
    except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError, ValueError, TypeError) as error:
        raise RequestError(f"the model rejected the request: {_model_error(error)}") from None
    if not row_format:
        if len(outputs) == 1:
            return {"outputs": _jsonable(next(iter(outputs.values())))}
        return {"outputs": {key: _jsonable(value) for key, value in outputs.items()}}
    rows = len(next(iter(outputs.values())))
    if len(outputs) == 1:
        return {"predictions": _jsonable(next(iter(outputs.values())))}
    return {"predictions": [{key: _jsonable(np.asarray(value[i])) for key, value in outputs.items()}
                            for i in range(rows)]}
