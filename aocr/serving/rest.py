"""TF Serving's REST API as a WSGI application, routed exactly as `http_rest_api_handler.cc` routes it.

    POST /v1/models/NAME[/versions/V | /labels/L]:predict            predict
    GET  /v1/models/NAME[/versions/V | /labels/L]                    model status
    GET  /v1/models/NAME[/versions/V | /labels/L]/metadata           signature definitions

Any other method or path under /v1/ is 400 {"error": "Malformed request: <METHOD> <path>"}; other paths
are 404. The path is matched as sent (query string included, case-insensitive), and the model name and
label are URL-decoded, as TF Serving does.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from aocr.core import savedmodel
from aocr.serving import rest_json
from aocr.serving.inputs import input_types
from aocr.serving.servables import Servable, Version
from aocr.serving.status import Code, ServingError, invalid
from aocr.serving.traffic import Traffic

log = logging.getLogger("aocr")

V1 = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_SPEC = r"(?:(?:/versions/(?P<version>\d+))|(?:/labels/(?P<label>[^/:]+)))?"
PREDICT = re.compile(r"/v1/models/(?P<name>[^/:]+)" + _SPEC + r":(?P<method>classify|regress|predict)",
                     re.IGNORECASE)
STATUS = re.compile(r"/v1/models(?:/(?P<name>[^/:]+))?" + _SPEC + r"(?:/(?P<sub>metadata))?", re.IGNORECASE)
INT64_MAX = 2**63 - 1
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           409: "Conflict", 413: "Payload Too Large", 429: "Too Many Requests", 499: "Client Closed Request",
           500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
           504: "Gateway Timeout"}


@dataclass
class Route:
    """What ParseModelInfo reads from a path: model, version or label, and the method or subresource."""

    name: str
    version: int | None
    label: str | None
    method: str  # "predict", "classify", "regress" (any case) for POST; "" for GET
    subresource: str  # "metadata" (any case) or ""


def parse_route(http_method: str, path: str) -> Route | None:
    """The route of a /v1/ request, or None where TF Serving's regular expressions do not match it."""
    pattern = PREDICT if http_method == "POST" else STATUS if http_method == "GET" else None
    match = pattern.fullmatch(path) if pattern else None
    if match is None:
        return None
    name = urllib.parse.unquote(match["name"] or "")
    version = None
    if match["version"]:
        version = int(match["version"])
        if version > INT64_MAX:
            raise invalid(f"Failed to convert version: {match['version']} to numeric.")
    label = urllib.parse.unquote(match["label"]) if match["label"] else None
    groups = match.groupdict()
    return Route(name, version, label, groups.get("method") or "", groups.get("sub") or "")


def status_body(servable: Servable, route: Route) -> dict:
    """GetModelStatusResponse as TF Serving's REST API prints it."""
    if not route.name:
        raise invalid("Missing model name in request.")
    return {"model_version_status": [
        {"version": str(number), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for number in servable.status(route.name, route.version)]}


def metadata_body(servable: Servable, route: Route) -> dict:
    """GetModelMetadataResponse (signature_def only) as TF Serving's REST API prints it."""
    if not route.name:
        raise invalid("Missing model name in request.")
    version = servable.find(route.name, route.version, route.label)
    signatures = {key: json_format.MessageToDict(signature, preserving_proto_field_name=True,
                                                 always_print_fields_with_no_presence=True)
                  for key, signature in version.model.meta_graph.signature_def.items()}
    return {"model_spec": {"name": servable.name, "signature_name": "", "version": str(version.number)},
            "metadata": {"signature_def": {"signature_def": signatures}}}


def signature_of(version: Version, name: str) -> Any:  # a SignatureDef proto
    """The named signature ("" for the default) or TF Serving's error for an unknown one."""
    key = name or savedmodel.SIGNATURE
    signature = version.model.meta_graph.signature_def.get(key)
    if signature is None:
        raise invalid(f'Serving signature name: "{key}" not found in signature def')
    return signature


def predict_body(servable: Servable, route: Route, raw: bytes, timeout: float) -> dict:
    """A :predict request, checked in TF Serving's order: JSON, signature name, model, signature, tensors."""
    doc = rest_json.parse_body(raw)
    name = rest_json.signature_name(doc)
    version = servable.find(route.name, route.version, route.label)
    key = name or savedmodel.SIGNATURE
    request_format, tensors = rest_json.request_tensors(doc, input_types(signature_of(version, name), key))
    outputs = version.answer(tensors, timeout, key)
    return rest_json.response_body(outputs, request_format)


def other_method_body(servable: Servable, route: Route, raw: bytes) -> dict:
    """:classify and :regress: TF Serving reads the body and the model, then finds a predict signature."""
    rest_json.parse_body(raw)
    version = servable.find(route.name, route.version, route.label)
    kind = "classification" if route.method == "classify" else "regression"
    raise invalid(f"Expected {kind} signature method_name to be tensorflow/serving/{route.method}. "
                  f"Was: {version.signature.method_name}")


class App:
    """The WSGI application: TF Serving's routing, JSON in and out, each request counted in `traffic`
    (aocr.serving.traffic)."""

    def __init__(self, servable: Servable, max_request_bytes: int, timeout: float, traffic: Traffic) -> None:
        self.servable = servable
        self.max_request_bytes = max_request_bytes
        self.timeout = timeout
        self.traffic = traffic

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        method = environ["REQUEST_METHOD"]
        path = environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
        headers = [("Content-Type", "application/json")]
        try:
            status, payload = 200, json.dumps(self.dispatch(method, path, environ)).encode("utf-8")
        except ServingError as e:
            status, payload = e.http_status, json.dumps({"error": e.message}).encode("utf-8")
        except Exception:  # a fault: logged with its traceback, answered as TF Serving answers INTERNAL
            log.exception("%s %s failed", method, path)
            status, payload = 500, json.dumps({"error": "Internal error"}).encode("utf-8")
        if method == "OPTIONS" and V1.fullmatch(path):  # TF Serving answers a preflight with no body
            payload, headers = b"", []
        headers.append(("Content-Length", str(len(payload))))
        start_response(f"{status} {REASONS.get(status, 'Error')}", headers)
        self.traffic.record(f"{method} {path}", str(status), status < 400, time.perf_counter() - started)
        return [payload]

    def dispatch(self, method: str, path: str, environ: dict) -> dict:
        """The answer's JSON for a request, or a ServingError (HttpRestApiHandler::ProcessRequest)."""
        if not V1.fullmatch(path):
            raise ServingError(Code.NOT_FOUND, f"Not found: {method} {path}")  # TF Serving: no handler
        if method == "OPTIONS":  # a CORS preflight
            if not re.search(r"https?://", environ.get("HTTP_ORIGIN", "")):
                raise ServingError(Code.FAILED_PRECONDITION, "Origin header is missing in CORS preflight")
            return {}
        route = parse_route(method, path)
        if route is not None and method == "POST":
            if route.method == "predict":
                return predict_body(self.servable, route, self.read_body(environ), self.timeout)
            if route.method in ("classify", "regress"):
                return other_method_body(self.servable, route, self.read_body(environ))
        if route is not None and method == "GET":
            if route.subresource == "metadata":
                return metadata_body(self.servable, route)
            return status_body(self.servable, route)
        raise invalid(f"Malformed request: {method} {path}")

    def read_body(self, environ: dict) -> bytes:
        """The request body, refused with 413 over --max-request-bytes."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise invalid("bad Content-Length") from None
        if length > self.max_request_bytes:
            raise TooLarge(f"request body of {length} bytes is over the limit of {self.max_request_bytes}")
        return environ["wsgi.input"].read(length) if length else b""


class TooLarge(ServingError):
    """A body over --max-request-bytes: HTTP 413 (TF Serving sets no limit of its own)."""

    def __init__(self, message: str) -> None:
        super().__init__(Code.RESOURCE_EXHAUSTED, message)

    @property
    def http_status(self) -> int:
        """413 Payload Too Large."""
        return 413
