"""Load test of `aocr serve` on 127.0.0.1, beside the same run's `aocr predict` stream on the same images.

    python benchmarks/serve_benchmark.py --model-dir benchmarks/out/learning/rendered-b65 --clients 1,8,32
    python benchmarks/serve_benchmark.py --model-dir ... --protocols rest,grpc --serve-flags=--no-enable-batching

Exports the model's latest checkpoint; reads the rendered test images as `aocr predict` does (the
Recognizer in batches of the default size, at the server's --precision) for the stream's ms/image;
then starts one `aocr serve` (with --serve-flags added) and, for each protocol and client count, sends
`--requests` requests of one image each from that many concurrent clients (REST with urllib, gRPC with
tensorflow-serving-api's stub). Prints requests/s, the share of the predict stream's images/s it
reaches, p50/p99 latency, and the server's and the clients' CPU per request (they share the machine),
after the latency of the first request the server answers.
Writes benchmarks/out/serve_benchmark.json (or --out).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    LEARNED_MODEL,
    export_model,
    free_port,
    machine,
    print_table,
    rendered_test_images,
    start_server,
    timed_stream,
    write_json,
)

Sender = Callable[[int], tuple[bool, float]]


def rest_sender(url: str, images: list[bytes]) -> Sender:
    """send(i): POST image i (modulo) to :predict in the row format; (succeeded, seconds)."""
    bodies = [json.dumps({"instances": [{"b64": base64.b64encode(image).decode()}]}).encode() for image in images]

    def send(i: int) -> tuple[bool, float]:
        request = urllib.request.Request(f"{url}/v1/models/aocr:predict", data=bodies[i % len(bodies)],
                                         headers={"Content-Type": "application/json"})
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
                ok = response.status == 200
        except urllib.error.HTTPError:
            ok = False
        return ok, time.perf_counter() - start

    return send


def grpc_sender(address: str, images: list[bytes]) -> Sender:
    """send(i): image i (modulo) through tensorflow-serving-api's PredictionServiceStub; (succeeded, seconds)."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(address))
    requests = []
    for image in images:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "aocr"
        request.inputs["input"].CopyFrom(tf.make_tensor_proto([image]))
        requests.append(request)

    def send(i: int) -> tuple[bool, float]:
        start = time.perf_counter()
        try:
            stub.Predict(requests[i % len(requests)], timeout=60)
            ok = True
        except grpc.RpcError:
            ok = False
        return ok, time.perf_counter() - start

    return send


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(send: Sender, requests: int, clients: int, pid: int) -> dict:
    """`requests` sent by `clients` concurrent clients, after a few warm-up requests."""
    for i in range(clients):
        send(i)
    start, server_cpu, own_cpu = time.perf_counter(), cpu_seconds(pid), time.process_time()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(send, range(requests)))
    seconds = time.perf_counter() - start
    server_cpu, own_cpu = cpu_seconds(pid) - server_cpu, time.process_time() - own_cpu
    latencies = [latency for _, latency in results]
    return {"requests": requests, "clients": clients, "succeeded": sum(ok for ok, _ in results),
            "requests_per_second": requests / seconds, "p50_ms": 1000 * percentile(latencies, 0.5),
            "p99_ms": 1000 * percentile(latencies, 0.99), "server_cpu_ms_per_request": 1000 * server_cpu / requests,
            "client_cpu_ms_per_request": 1000 * own_cpu / requests}


def predict_stream_ms(model_dir: str, images: list[bytes], precision: str, rounds: int = 3) -> float:
    """ms/image of `aocr predict`'s reading (the Recognizer, default batch size) of `images`: best of `rounds`."""
    from aocr.core import defaults
    from aocr.core import params as model_params
    from aocr.core.params import Decoding
    from aocr.inference.recognizer import Recognizer

    recognizer = Recognizer.load(model_dir, model_params.require(model_dir), decoding=Decoding(precision=precision))
    try:
        recognizer.recognize(images[:defaults.BATCH_SIZE], defaults.BATCH_SIZE)  # warm-up
        return min(timed_stream(recognizer, images)[0] for _ in range(rounds))
    finally:
        recognizer.close()


def run_loads(args: argparse.Namespace, images: list[bytes], export_dir: Path) -> tuple[float, list[dict]]:
    """One server: the latency of its first request (ms), then every protocol and client count of the
    command line against it, in turn."""
    grpc_port = free_port() if "grpc" in args.protocols else 0
    flags = ["--precision", args.precision, *shlex.split(args.serve_flags)]
    process, url = start_server(export_dir, grpc_port, flags)
    loads = []
    try:
        first_ms = 1000 * rest_sender(url, images)(0)[1]
        print(f"the first request after the start: {first_ms:.0f} ms", flush=True)
        for protocol in args.protocols:
            send = rest_sender(url, images) if protocol == "rest" else grpc_sender(f"127.0.0.1:{grpc_port}", images)
            for clients in args.clients:
                figures = measure(send, args.requests, clients, process.pid)
                loads.append({"protocol": protocol, **figures})
                print(f"{protocol}, {clients} clients: {figures['requests_per_second']:.1f} requests/s", flush=True)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    return first_ms, loads


def print_loads(loads: list[dict], stream_ms: float, precision: str) -> None:
    stream_rate = 1000 / stream_ms
    print_table([("load", "requests/s (share of stream)", "p50 / p99 ms, CPU ms/request server + clients")]
                + [(f"{load['protocol']}, {load['clients']} clients, {load['succeeded']}/{load['requests']} ok",
                    f"{load['requests_per_second']:.1f} ({100 * load['requests_per_second'] / stream_rate:.0f}%)",
                    f"{load['p50_ms']:.1f} / {load['p99_ms']:.1f}, {load['server_cpu_ms_per_request']:.1f} + "
                    f"{load['client_cpu_ms_per_request']:.1f}") for load in loads]
                + [("aocr predict stream", f"{stream_rate:.1f} images/s", f"{stream_ms:.2f} ms/image, {precision}")])


def comma_list(kind: Callable[[str], object]) -> Callable[[str], list]:
    return lambda text: [kind(item) for item in text.split(",")]


def main() -> None:
    from aocr.core.precision import serving_precision

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=str(LEARNED_MODEL), help="a trained model dir (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=400, help="requests per load (default: %(default)s)")
    parser.add_argument("--clients", type=comma_list(int), default=[1, 8, 32], help="client counts (default: 1,8,32)")
    parser.add_argument("--protocols", type=comma_list(str), default=["rest", "grpc"],
                        help="rest, grpc or both (default: rest,grpc)")
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="aocr serve's and the stream's --precision (default: auto)")
    parser.add_argument("--serve-flags", default="", help="more `aocr serve` flags, as one string "
                        "(--serve-flags=--no-enable-batching)")
    parser.add_argument("--out", default="serve_benchmark.json", help="file name under benchmarks/out")
    args = parser.parse_args()
    _, images = rendered_test_images()
    precision = serving_precision(args.precision)
    stream_ms = predict_stream_ms(args.model_dir, images, precision)
    export_dir = export_model(args.model_dir, Path(tempfile.mkdtemp(prefix="aocr-serve-bench-")))
    first_ms, loads = run_loads(args, images, export_dir)
    print_loads(loads, stream_ms, precision)
    results = {"loads": loads, "first_request_ms": first_ms, "predict_stream_ms_per_image": stream_ms,
               "precision": precision, "serve_flags": args.serve_flags, "model_dir": args.model_dir,
               "machine": machine()}
    print(f"\nwrote {write_json(args.out, results)}")


if __name__ == "__main__":
    main()
