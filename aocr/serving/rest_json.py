"""TF Serving's JSON predict format (`util/json_tensor.cc`): a request body -> input tensors, outputs -> JSON.

    {"signature_name": ..., "instances": [<row>, ...]}   row format: answered {"predictions": [...]}
    {"signature_name": ..., "inputs": <tensor>}          columnar format: answered {"outputs": ...}

A string tensor is a (nested) list of JSON strings or {"b64": "..."} objects; a row is a value, or an
object with one key per named input. The checks and their texts are TF Serving's, so a client that
parses them sees the same words.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from aocr.serving.status import ServingError, invalid, shape_string

ROW = "row"
COLUMNAR = "columnar"
DEBUG_STRING_BYTES = 256


Types = dict[str, np.dtype]  # input name -> the NumPy type of its tensor


@dataclass(frozen=True)
class NumberType:
    """A numeric input type as JSON carries it: TF's name for it, the JSON numbers it takes, its range."""

    name: str  # as TF's DataTypeString names it
    kinds: tuple[type, ...]
    low: int | float
    high: int | float


NUMBER_TYPES = {
    np.dtype(np.float32): NumberType("float", (int, float), float(np.finfo(np.float32).min),
                                     float(np.finfo(np.float32).max)),
    np.dtype(np.int32): NumberType("int32", (int,), np.iinfo(np.int32).min, np.iinfo(np.int32).max),
}

# Dimensions a request's tensor may have (numpy allows 64; the image inputs take one).
MAX_RANK = 32


def debug_string(value: Any) -> str:
    """A JSON value for an error message, cut at 256 characters as TF Serving cuts it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)[:DEBUG_STRING_BYTES]


def json_type(value: Any) -> str:
    """rapidjson's name for the value's type."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def parse_body(raw: bytes) -> dict:
    """The request body as a JSON object (ParseJson)."""
    if not raw:
        raise invalid("JSON Parse error: The document is empty")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise invalid(f"JSON Parse error: Invalid encoding in string. at offset: {e.start}") from None
    except json.JSONDecodeError as e:
        raise invalid(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
    except RecursionError:
        raise invalid("JSON Parse error: nested too deeply") from None
    except ValueError as e:  # an integer of thousands of digits, over Python's conversion limit
        raise invalid(f"JSON Parse error: {e}") from None
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {debug_string(doc)} Is not object")
    return doc


def signature_name(doc: dict) -> str:
    """The request's "signature_name", "" when absent (the default signature)."""
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid(f"JSON Value: {debug_string(doc)} not formatted correctly. "
                      "'signature_name' key must be a string value.")
    return name


def is_b64(value: Any) -> bool:
    """{"b64": "<string>"} and nothing else."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def b64_decode(value: dict) -> bytes:
    """The bytes of a {"b64": ...} object; padding is optional, as in absl::Base64Unescape."""
    text = value["b64"].rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid("Unable to base64 decode") from None


def leaf_bytes(value: Any) -> bytes:
    """One DT_STRING element: a {"b64": ...} object or a JSON string (its UTF-8 bytes)."""
    if isinstance(value, dict):
        if not is_b64(value):
            raise invalid(f"JSON Value: {debug_string(value)} not formatted correctly for base64 data")
        return b64_decode(value)
    if not isinstance(value, str):
        raise invalid(f"JSON Value: {debug_string(value)} Type: {json_type(value)} is not of expected type: string")
    return value.encode("utf-8")


def dense_shape(value: Any) -> list[int]:
    """The shape a nested list claims, read from its first elements (GetDenseTensorShape)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def leaf_number(value: Any, number: NumberType) -> int | float:
    """One DT_FLOAT or DT_INT32 element: a JSON number of the type's kinds, within its range."""
    if isinstance(value, bool) or not isinstance(value, number.kinds):
        raise invalid(f"JSON Value: {debug_string(value)} Type: {json_type(value)} is not of expected type: "
                      f"{number.name}")
    if not number.low <= value <= number.high:  # NaN and infinities too (Python's json reads NaN, Infinity)
        raise invalid(f"JSON Value: {debug_string(value)} is out of range for {number.name}")
    return value


def json_tensor(value: Any, dtype: np.dtype) -> np.ndarray:
    """A JSON value -> an array of `dtype` (object for bytes, float32 or int32), refusing ragged lists and
    elements of another type (FillTensorProto)."""
    shape = dense_shape(value)
    if len(shape) > MAX_RANK:
        raise invalid(f"JSON value nested {len(shape)} lists deep; a tensor has at most {MAX_RANK} dimensions here")
    leaf = leaf_bytes if dtype.kind == "O" else functools.partial(leaf_number, number=NUMBER_TYPES[dtype])
    flat: list[Any] = []

    def fill(item: Any, level: int) -> None:
        if not isinstance(item, list):
            if level != len(shape):
                raise invalid(f"JSON Value: {debug_string(item)} found at incorrect level: {level + 1} in the "
                              f"JSON DOM. Expected at level: {len(shape)}")
            flat.append(leaf(item))
            return
        if level >= len(shape):
            raise invalid(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
        if len(item) != shape[level]:
            raise invalid(f"Encountered list at unexpected size: {len(item)} at level: {level} expected size: "
                          f"{shape[level]}")
        for element in item:
            fill(element, level + 1)

    fill(value, 0)
    tensor = np.empty(len(flat), dtype=dtype)
    tensor[:] = flat
    return tensor.reshape(shape)


def _add_item(value: Any, name: str, types: Types, seen: dict[str, np.ndarray],
              rows: dict[str, list[np.ndarray]]) -> None:
    """One named input of one row (AddInstanceItem): every row's tensor has the first row's shape."""
    if name not in types:
        raise invalid(f"JSON object: does not have named input: {name}")
    tensor = json_tensor(value, types[name])
    first = seen.setdefault(name, tensor)
    if first.size != tensor.size:
        raise invalid(f"Expecting tensor size: {first.size} but got: {tensor.size}")
    if first.shape != tensor.shape:
        raise invalid(f"Expecting shape {shape_string(first.shape)} but got: {shape_string(tensor.shape)}")
    rows.setdefault(name, []).append(tensor)


def instances_tensors(doc: dict, types: Types) -> dict[str, np.ndarray]:
    """The row format: "instances" is a list of values, or of objects with one key per input."""
    names = sorted(types)
    rows = doc["instances"]
    if not isinstance(rows, list):
        raise invalid(f"JSON Value: {debug_string(doc)} Expecting 'instances' to be an list/array")
    if not rows:
        raise invalid(f"JSON Value: {debug_string(doc)} No values in 'instances' array")
    if not isinstance(rows[0], dict) and len(names) > 1:
        raise invalid("instances is a plain list, but expecting list of objects as multiple input tensors "
                      "required as per tensorinfo_map")

    def is_object(value: Any) -> bool:
        return isinstance(value, dict) and not is_b64(value)

    objects = is_object(rows[0])
    seen: dict[str, np.ndarray] = {}
    columns: dict[str, list[np.ndarray]] = {}
    for index, row in enumerate(rows):
        if objects != is_object(row):
            got = "list" if objects else "object"
            raise invalid(f"Expecting {'object' if objects else 'value/list'} but got {got} at item {index} "
                          "of input list")
        for key, value in (row.items() if objects else [(names[0], row)]):
            try:
                _add_item(value, key, types, seen, columns)
            except ServingError as e:
                where = f"{index} key: {key}" if objects else f"{index}"
                raise invalid(f"Failed to process element: {where} of 'instances' list. "
                              f"Error: INVALID_ARGUMENT: {e.message}") from None
        if objects and set(row) != set(names):
            raise invalid(f"Failed to process element: {index} of 'instances' list. JSON object: "
                          f"{debug_string(row)} keys must be equal to: {','.join(sorted(names))}")
    return {name: np.stack(tensors) for name, tensors in columns.items()}


def inputs_tensors(doc: dict, types: Types) -> dict[str, np.ndarray]:
    """The columnar format: "inputs" is the one input's tensor, or an object with one key per input."""
    names = sorted(types)
    value = doc["inputs"]
    if not isinstance(value, dict) or is_b64(value):
        if len(names) > 1:
            raise invalid("inputs is a plain value/list, but expecting an object as multiple input tensors "
                          "required as per tensorinfo_map")
        return {names[0]: json_tensor(value, types[names[0]])}
    for name in names:
        if name not in value:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
    return {name: json_tensor(value[name], types[name]) for name in names}


def request_tensors(doc: dict, types: Types) -> tuple[str, dict[str, np.ndarray]]:
    """(ROW or COLUMNAR, input name -> tensor) from a parsed predict body (FillPredictRequestFromJson);
    types: the signature's input name -> NumPy type (aocr.serving.inputs.input_types)."""
    if "instances" in doc and "inputs" in doc:
        raise invalid(f"JSON Value: {debug_string(doc)} Not formatted correctly expecting only one of 'inputs' "
                      "or 'instances' keys to exist ")
    if "instances" in doc:
        return ROW, instances_tensors(doc, types)
    if "inputs" in doc:
        return COLUMNAR, inputs_tensors(doc, types)
    raise invalid("Missing 'inputs' or 'instances' key")


def to_json(value: Any, as_b64: bool) -> Any:
    """A tensor (or part of one) as JSON: nested lists; bytes as text, or {"b64": ...} for a *_bytes output."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list):
        return [to_json(item, as_b64) for item in value]
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")} if as_b64 else value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def response_body(outputs: dict[str, np.ndarray], request_format: str) -> dict:
    """{"predictions": [...]} for the row format, {"outputs": ...} for the columnar (MakeJsonFromTensors)."""
    names = sorted(outputs)
    as_b64 = {name: name.endswith("_bytes") for name in names}
    if request_format == COLUMNAR:
        columns = {name: to_json(np.asarray(outputs[name]), as_b64[name]) for name in names}
        return {"outputs": columns if len(names) > 1 else columns[names[0]]}
    batch = None
    for name in names:
        shape = np.shape(outputs[name])
        if not shape:
            raise invalid(f"Tensor name: {name} has no shape information ")
        if batch is not None and shape[0] != batch:
            raise invalid(f"Tensor name: {name} has inconsistent batch size: {shape[0]} expecting: {batch}")
        batch = shape[0]
    rows = [{name: to_json(outputs[name][i], as_b64[name]) for name in names} for i in range(batch or 0)]
    return {"predictions": rows if len(names) > 1 else [row[names[0]] for row in rows]}
