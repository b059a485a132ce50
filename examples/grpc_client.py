"""Read images with a model served over TensorFlow Serving's gRPC API, by `aocr serve` or by
tensorflow_model_server, with TF Serving's own client stubs (`pip install grpcio tensorflow-serving-api`).

    python examples/grpc_client.py 127.0.0.1:8500 image.png [image.png ...]

Prints one line per image: path, text and probability, tab-separated.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def read(address: str, paths: list[str], model: str = "aocr", timeout: float = 60) -> list[tuple[str, float]]:
    """(text, probability) for the images at `paths`, in order, from one Predict call."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    request.inputs["input"].CopyFrom(tf.make_tensor_proto([Path(path).read_bytes() for path in paths]))
    with grpc.insecure_channel(address) as channel:
        try:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            raise SystemExit(f"{error.code().name}: {error.details()}") from None
    texts = tf.make_ndarray(response.outputs["output"])
    probabilities = tf.make_ndarray(response.outputs["probability"])
    return [(text.decode("utf-8"), float(p)) for text, p in zip(texts, probabilities, strict=True)]


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    address, paths = sys.argv[1], sys.argv[2:]
    for path, (text, probability) in zip(paths, read(address, paths), strict=True):
        print(f"{path}\t{text}\t{probability:.6f}")


if __name__ == "__main__":
    main()
