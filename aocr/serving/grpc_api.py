"""TF Serving's gRPC API: PredictionService (Predict, GetModelMetadata) and ModelService (GetModelStatus).

The messages and service definitions are those of the `tensorflow-serving-api` package, so a client
written for tensorflow_model_server (its PredictionServiceStub and ModelServiceStub) works unchanged.
Checks, codes and texts follow TF Serving's predict_util.cc, get_model_metadata_impl.cc and
get_model_status_impl.cc; messages over 1024 characters are cut as its ToGRPCStatus cuts them.
Importing this module fails with ImportError where `tensorflow-serving-api` or grpcio is missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from aocr.core import savedmodel
from aocr.core.errors import AocrError
from aocr.serving.inputs import TENSORFLOW_TYPES, input_types
from aocr.serving.servables import Servable
from aocr.serving.status import Code, ServingError, invalid, shape_string
from aocr.serving.traffic import Traffic

log = logging.getLogger("aocr")

MESSAGE_LIMIT = 1024


def spec_choice(spec: Any) -> tuple[int | None, str | None]:
    """(version, label) of a ModelSpec: at most one is set."""
    choice = spec.WhichOneof("version_choice")
    return (spec.version.value if choice == "version" else None,
            spec.version_label if choice == "version_label" else None)


def as_proto_field(value: np.ndarray) -> Any:
    """A TensorProto with the values in its typed field (string_val, double_val), as TF Serving answers."""
    value = np.asarray(value)
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=n)
                                                   for n in value.shape])
    if value.dtype == object:
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape, string_val=value.ravel().tolist())
    return tf.make_tensor_proto(value)


def check_inputs(signature: Any, request: Any) -> None:
    """The request's input names against the signature's (VerifyRequestInputsSize, GetInputValues)."""
    sent, wanted = set(request.inputs), set(signature.inputs)
    if sent != wanted:

        def names(keys: set[str]) -> str:
            return "{" + ",".join(sorted(keys)) + "}"

        raise invalid(f"input size does not match signature: {len(sent)}!={len(wanted)} len({names(sent)}) != "
                      f"len({names(wanted)}). Sent extra: {names(sent - wanted)}. Missing but required: "
                      f"{names(wanted - sent)}.")
    for alias in request.output_filter:
        if alias not in signature.outputs:
            raise invalid(f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                          f"{{{','.join(sorted(signature.outputs))}}}.")
    if len(set(request.output_filter)) != len(request.output_filter):
        raise invalid(f"duplicate output tensor alias: {request.output_filter[0]}")


def type_name(dtype: int) -> str:
    """TF's DataTypeString of a DataType enum: "string", "float", "int32"."""
    return types_pb2.DataType.Name(dtype).removeprefix("DT_").lower()


def sent_values(proto: Any, dtype: np.dtype) -> int:
    """How many values a TensorProto carries: strings, typed values, or tensor_content's bytes as elements."""
    if dtype.kind == "O":
        return len(proto.string_val)
    if proto.tensor_content:
        return len(proto.tensor_content) // dtype.itemsize
    return len(proto.float_val) if dtype.kind == "f" else len(proto.int_val)


def input_tensor(index: int, name: str, proto: Any, dtype: np.dtype) -> np.ndarray:
    """The request's input `name` (argument `index` of the signature) as an array of `dtype`: object (bytes),
    float32 or int32 (aocr.serving.inputs)."""
    wanted = TENSORFLOW_TYPES[dtype]
    if proto.dtype != wanted:
        raise invalid(f"Expects arg[{index}] to be {type_name(wanted)} but {type_name(proto.dtype)} is provided")
    declared = [dim.size for dim in proto.tensor_shape.dim]
    elements = int(np.prod(declared, dtype=object)) if declared else 1
    values = sent_values(proto, dtype)
    if any(size < 0 for size in declared) or elements != values:
        # make_ndarray would fill the declared shape from what was sent: [10^9] with no values costs gigabytes
        raise invalid(f"tensor {name}: its shape {shape_string(declared)} holds {elements} elements but {values} "
                      "values were sent")
    try:
        return tf.make_ndarray(proto)
    except Exception:  # a malformed TensorProto
        raise invalid(f"tensor parsing error: {name}") from None


def answer(context: Any, method: str, work: Callable[[], Any], traffic: Traffic) -> Any:
    """Run one RPC: its response, or an abort with TF Serving's code and text; counted in `traffic`."""
    started = time.perf_counter()
    code, message = Code.OK, ""
    try:
        return work()
    except ServingError as e:
        code, message = e.code, e.message
    except Exception:  # a fault: logged with its traceback, answered INTERNAL
        log.exception("gRPC %s failed", method)
        code, message = Code.INTERNAL, "Internal error"
    finally:
        traffic.record(f"gRPC {method}", code.name, code == Code.OK, time.perf_counter() - started)
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + "...TRUNCATED"
    context.abort(grpc.StatusCode[code.name], message)
    return None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; Classify, Regress and MultiInference answer UNIMPLEMENTED."""

    def __init__(self, servable: Servable, default_timeout: float, traffic: Traffic) -> None:
        self.servable = servable
        self.default_timeout = default_timeout
        self.traffic = traffic

    def Predict(self, request: Any, context: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        """PredictRequest -> PredictResponse."""
        return answer(context, "Predict", lambda: self.predict(request, context.time_remaining()), self.traffic)

    def GetModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        """GetModelMetadataRequest (metadata_field "signature_def") -> GetModelMetadataResponse."""
        return answer(context, "GetModelMetadata", lambda: self.metadata(request), self.traffic)

    def predict(self, request: Any, time_remaining: float | None) -> Any:
        """TensorflowPredictor::Predict and RunPredict, in their order of checks."""
        if not request.HasField("model_spec"):
            raise invalid("Missing ModelSpec")
        spec = request.model_spec
        version = self.servable.find(spec.name, *spec_choice(spec))
        key = spec.signature_name or savedmodel.SIGNATURE
        signature = version.model.meta_graph.signature_def.get(key)
        if signature is None:
            raise ServingError(Code.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        types = input_types(signature, key)
        check_inputs(signature, request)
        tensors = {name: input_tensor(index, name, request.inputs[name], types[name])
                   for index, name in enumerate(sorted(types))}
        timeout = self.default_timeout if time_remaining is None else max(0.0, time_remaining)
        outputs = version.answer(tensors, timeout, key)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = spec.name
        response.model_spec.signature_name = key
        response.model_spec.version.value = version.number
        for alias in request.output_filter or sorted(outputs):
            response.outputs[alias].CopyFrom(as_proto_field(outputs[alias]))
        return response

    def metadata(self, request: Any) -> Any:
        """GetModelMetadataImpl: the signature definitions of the requested version."""
        if not request.HasField("model_spec"):
            raise invalid("Missing ModelSpec")
        if not request.metadata_field:
            raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for name in request.metadata_field:
            if name != "signature_def":
                raise invalid(f"Metadata field {name} is not supported")
        spec = request.model_spec
        version = self.servable.find(spec.name, *spec_choice(spec))
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in version.model.meta_graph.signature_def.items():
            signatures.signature_def[key].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.servable.name
        response.model_spec.version.value = version.number
        response.metadata["signature_def"].Pack(signatures)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus; HandleReloadConfigRequest answers UNIMPLEMENTED (one model, fixed at start)."""

    def __init__(self, servable: Servable, traffic: Traffic) -> None:
        self.servable = servable
        self.traffic = traffic

    def GetModelStatus(self, request: Any, context: Any) -> Any:  # noqa: N802
        """GetModelStatusRequest -> GetModelStatusResponse (labels play no part, as in TF Serving)."""
        return answer(context, "GetModelStatus", lambda: self.status(request), self.traffic)

    def status(self, request: Any) -> Any:
        """GetModelStatusImpl: every loaded version, or the one asked for, AVAILABLE."""
        if not request.HasField("model_spec"):
            raise invalid("Missing ModelSpec")
        version, _ = spec_choice(request.model_spec)
        response = get_model_status_pb2.GetModelStatusResponse()
        for number in self.servable.status(request.model_spec.name, version):
            status = response.model_version_status.add(version=number,
                                                       state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
            status.status.SetInParent()  # error_code OK, as TF Serving sets it
        return response


def start(servable: Servable, host: str, port: int, max_message_bytes: int, threads: int,
          default_timeout: float, traffic: Traffic) -> grpc.Server:
    """A started gRPC server with both services on host:port; a port in use is an AocrError.

    At most `threads` RPCs run and as many wait for a thread; gRPC answers the ones beyond with
    RESOURCE_EXHAUSTED at once, so waiting requests (each up to max_message_bytes) cannot pile up."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
                         options=[("grpc.max_receive_message_length", max_message_bytes),
                                  ("grpc.max_send_message_length", -1), ("grpc.so_reuseport", 0)],
                         maximum_concurrent_rpcs=2 * threads)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(servable, default_timeout, traffic), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(servable, traffic), server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if not bound:
        raise AocrError(f"cannot listen on {host}:{port} for gRPC; pick another --grpc-port, or 0 for no gRPC")
    server.start()
    return server
