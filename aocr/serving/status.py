"""TF Serving's errors: a canonical code (as gRPC and TensorFlow number them) and a message.

The REST API answers an error with `{"error": message}` and the HTTP status TF Serving's HTTP server
picks for the code (`http_server.cc`, ToHTTPStatusCode); the gRPC API with the code itself.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """Canonical error codes (google.rpc.Code, tensorflow.error.Code and grpc.StatusCode agree)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


HTTP_STATUS = {
    Code.OK: 200, Code.CANCELLED: 499, Code.UNKNOWN: 500, Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504, Code.NOT_FOUND: 404, Code.ALREADY_EXISTS: 409, Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429, Code.FAILED_PRECONDITION: 400, Code.ABORTED: 409, Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501, Code.INTERNAL: 500, Code.UNAVAILABLE: 503, Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


class ServingError(Exception):
    """A request TF Serving would refuse: `code` and the message it would give."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving's REST server gives this code."""
        return HTTP_STATUS.get(self.code, 500)


def invalid(message: str) -> ServingError:
    """INVALID_ARGUMENT (HTTP 400)."""
    return ServingError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    """NOT_FOUND (HTTP 404)."""
    return ServingError(Code.NOT_FOUND, message)


def shape_string(shape: tuple[int, ...] | list[int]) -> str:
    """A shape as TF Serving prints it: [2,3]."""
    return "[" + ",".join(map(str, shape)) + "]"
