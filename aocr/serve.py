"""`aocr serve`: an exported SavedModel behind TensorFlow Serving's REST API, for one model.

    GET  /v1/models/NAME[/versions/V]            model status
    GET  /v1/models/NAME[/versions/V]/metadata   signature definitions
    POST /v1/models/NAME[/versions/V]:predict    {"instances": [...]} or {"inputs": ...}

Bytes travel as {"b64": "..."}. Errors are {"error": "..."} with a 4xx status, as TF
Serving gives them; a client written for tensorflow_model_server works unchanged.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import json_format

from aocr.errors import AocrError
from aocr.export import SIGNATURE, versions
from aocr.fileio import join

tf1 = tf.compat.v1
log = logging.getLogger("aocr")

ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<tail>/metadata|:predict)?$")


class RequestError(Exception):
    """A bad request: the message goes back to the client as {"error": ...} with `status`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class LoadedModel:
    """One SavedModel version in its own session."""

    version: int
    session: tf1.Session
    signature: Any  # SignatureDef proto
    input_name: str
    output_names: dict[str, str]

    @classmethod
    def load(cls, path: str, version: int) -> LoadedModel:
        graph = tf.Graph()
        session = tf1.Session(graph=graph)
        with graph.as_default():
            try:
                meta = tf1.saved_model.loader.load(session, [tf1.saved_model.tag_constants.SERVING], path)
            except (OSError, RuntimeError, tf.errors.OpError) as e:
                raise AocrError(f"{path}: not a loadable SavedModel ({e}); export one with `aocr export`") from None
        if SIGNATURE not in meta.signature_def:
            raise AocrError(f"{path}: has no '{SIGNATURE}' signature; export it with `aocr export`")
        signature = meta.signature_def[SIGNATURE]
        outputs = {key: info.name for key, info in signature.outputs.items()}
        return cls(version, session, signature, signature.inputs["input"].name, outputs)

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """images: an object array of bytes, a scalar or [N]; returns each output with the same shape."""
        try:
            values = self.session.run(self.output_names, {self.input_name: images})
        except tf.errors.InvalidArgumentError as e:
            first = (e.message or "").strip().splitlines()[0] if e.message else "invalid input"
            raise RequestError(f"cannot read the input as an image: {first}") from None
        return values


def decode_b64(value: Any, where: str) -> bytes:
    if not isinstance(value, dict) or set(value) != {"b64"} or not isinstance(value["b64"], str):
        expected = '{"b64": "<base64 of an image file>"}'
        raise RequestError(f"{where}: expected {expected}, got {json.dumps(value)[:80]}")
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{where}: the b64 value is not valid base64") from None


def decode_tensor(value: Any, where: str) -> np.ndarray:
    """A JSON value for the string input: one b64 object (a scalar) or a list of them."""
    if isinstance(value, list):
        if not value:
            raise RequestError(f"{where}: the list of images is empty")
        return np.array([decode_b64(item, f"{where}[{i}]") for i, item in enumerate(value)], dtype=object)
    return np.array(decode_b64(value, where), dtype=object)


def to_json(value: np.ndarray | bytes | float) -> Any:
    if isinstance(value, np.ndarray):
        return [to_json(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return float(value)


def predict_response(model: LoadedModel, body: dict) -> dict:
    """Answer a parsed :predict body in the row ("instances") or columnar ("inputs") format."""
    name = body.get("signature_name", SIGNATURE)
    if name != SIGNATURE:
        raise RequestError(f"Serving signature name: \"{name}\" not found in signature def")
    if ("instances" in body) == ("inputs" in body):
        raise RequestError("the request needs exactly one of 'instances' (row format) or 'inputs' (columnar format)")
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise RequestError("'instances' must be a list")
        rows = [item["input"] if isinstance(item, dict) and "input" in item else item for item in instances]
        outputs = model.predict(decode_tensor(rows, "instances"))
        keys = sorted(outputs)
        return {"predictions": [{key: to_json(outputs[key][i]) for key in keys} for i in range(len(rows))]}
    inputs = body["inputs"]
    if isinstance(inputs, dict) and "b64" not in inputs:
        unknown = sorted(set(inputs) - {"input"})
        if unknown or "input" not in inputs:
            raise RequestError(f"unknown or missing input name(s) {unknown or ['input']}: this model's only input "
                               "is 'input'")
        inputs = inputs["input"]
    outputs = model.predict(decode_tensor(inputs, "inputs"))
    return {"outputs": {key: to_json(value) for key, value in outputs.items()}}


def status_response(model: LoadedModel) -> dict:
    return {"model_version_status": [{"version": str(model.version), "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}]}


def metadata_response(model: LoadedModel, name: str) -> dict:
    signature = json_format.MessageToDict(model.signature, preserving_proto_field_name=True)
    return {"model_spec": {"name": name, "signature_name": "", "version": str(model.version)},
            "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}}}


class App:
    """The WSGI application: routes, JSON in and out, one log line per request."""

    def __init__(self, model: LoadedModel, model_name: str, max_request_bytes: int) -> None:
        self.model = model
        self.model_name = model_name
        self.max_request_bytes = max_request_bytes

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        try:
            status, body = 200, self.route(method, path, environ)
        except RequestError as e:
            status, body = e.status, {"error": str(e)}
        except Exception:  # a real fault: logged with its traceback, reported as 500
            log.exception("%s %s failed", method, path)
            status, body = 500, {"error": "internal server error"}
        payload = json.dumps(body).encode("utf-8")
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  413: "Payload Too Large", 500: "Internal Server Error"}.get(status, "Error")
        start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                              ("Content-Length", str(len(payload)))])
        log.info("%s %s %d %.1f ms", method, path, status, 1000 * (time.perf_counter() - started))
        return [payload]

    def route(self, method: str, path: str, environ: dict) -> dict:
        match = ROUTE.match(path)
        if not match:
            raise RequestError(f"Malformed request: {method} {path}", 404)
        if match["name"] != self.model_name:
            raise RequestError(f"Servable not found for request: Latest({match['name']})", 404)
        version = match["version"]
        if version is not None and version != str(self.model.version):
            raise RequestError(f"Servable not found for request: Specific({match['name']}, {version})", 404)
        tail = match["tail"]
        if tail == ":predict":
            if method != "POST":
                raise RequestError("predict takes POST", 405)
            return predict_response(self.model, self.read_json(environ))
        if method != "GET":
            raise RequestError(f"{path} takes GET", 405)
        return metadata_response(self.model, self.model_name) if tail == "/metadata" else status_response(self.model)

    def read_json(self, environ: dict) -> dict:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise RequestError("bad Content-Length") from None
        if length > self.max_request_bytes:
            raise RequestError(f"request body of {length} bytes is over the limit of {self.max_request_bytes}", 413)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RequestError(f"JSON Parse error: {e}") from None
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        return body


def load_version(export_dir: str, version: int | None) -> LoadedModel:
    available = versions(export_dir)
    if not available:
        raise AocrError(f"{export_dir}: no version directory (1, 2, ...); make one with `aocr export {export_dir}`")
    if version is None:
        version = available[-1]
    elif version not in available:
        raise AocrError(f"{export_dir}: no version {version}; there are {available}")
    return LoadedModel.load(join(export_dir, str(version)), version)


def run(args: argparse.Namespace) -> int:
    from waitress.server import create_server

    model = load_version(args.export_path, args.export_version)
    app = App(model, args.model_name, args.max_request_bytes)
    try:
        server = create_server(app, host=args.host, port=args.port, threads=8,
                               max_request_body_size=args.max_request_bytes + 1024)
    except OSError as e:
        raise AocrError(f"cannot listen on {args.host}:{args.port} ({e.strerror}); pick another --port") from None
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            log.info("%s received: shutting down", signal.Signals(signum).name)
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("serving model '%s' version %d from %s at http://%s:%s/v1/models/%s", args.model_name, model.version,
             args.export_path, args.host, server.effective_port, args.model_name)
    try:
        with contextlib.suppress(KeyboardInterrupt):  # SIGINT/SIGTERM: the normal way to stop serving
            server.run()
    finally:
        server.close()
        model.session.close()
    return 0
