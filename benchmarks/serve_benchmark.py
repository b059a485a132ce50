"""Load test of `aocr serve` on 127.0.0.1: a bounded number of requests from N concurrent clients.

    python benchmarks/serve_benchmark.py --model-dir benchmarks/out/learning --requests 200 --clients 8
    python benchmarks/serve_benchmark.py --model-dir ... --protocol grpc --serve-flags=--no-enable-batching

Exports the model's latest checkpoint, starts `aocr serve` on free ports (with --serve-flags added),
sends one rendered image per request over REST or gRPC (tensorflow-serving-api's stub), and prints
requests/s and p50/p99 latency beside the single-image latency of one client alone on the same server,
measured in the same run. Writes benchmarks/out/serve_benchmark.json (or --out).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import signal
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import export_model, free_port, machine, print_table, rendered_set, start_server, write_json  # noqa: E402

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
    """One client alone (20 requests), then `requests` from `clients` concurrent clients."""
    send(0)  # warm-up
    single = [send(i)[1] for i in range(20)]
    start, cpu = time.perf_counter(), cpu_seconds(pid)
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(send, range(requests)))
    seconds, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu
    latencies = [latency for _, latency in results]
    return {"requests": requests, "clients": clients, "succeeded": sum(ok for ok, _ in results),
            "requests_per_second": requests / seconds, "p50_ms": 1000 * percentile(latencies, 0.5),
            "p99_ms": 1000 * percentile(latencies, 0.99), "one_client_p50_ms": 1000 * statistics.median(single),
            "server_cpu_ms_per_request": 1000 * cpu / requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, help="a trained model dir (checkpoints and params.json)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--protocol", choices=["rest", "grpc"], default="rest")
    parser.add_argument("--serve-flags", default="", help="more `aocr serve` flags, as one string "
                        "(--serve-flags=--no-enable-batching)")
    parser.add_argument("--out", default="serve_benchmark.json", help="file name under benchmarks/out")
    args = parser.parse_args()
    annotations, _ = rendered_set("rendered-test-500", 500, seed=12)
    images = [Path(line.split(" ", 1)[0]).read_bytes() for line in annotations.read_text().splitlines()]
    images = images[:args.requests]
    export_dir = export_model(args.model_dir, Path(tempfile.mkdtemp(prefix="aocr-serve-bench-")))
    grpc_port = free_port() if args.protocol == "grpc" else 0
    process, url = start_server(export_dir, grpc_port, shlex.split(args.serve_flags))
    try:
        send = rest_sender(url, images) if args.protocol == "rest" else grpc_sender(f"127.0.0.1:{grpc_port}", images)
        figures = measure(send, args.requests, args.clients, process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    figures.update(protocol=args.protocol, serve_flags=args.serve_flags, machine=machine())
    print_table([
        ("figure", "measured", "note"),
        ("requests", f"{figures['succeeded']}/{args.requests} succeeded",
         f"{args.clients} concurrent clients over {args.protocol} {args.serve_flags}".rstrip()),
        ("requests/s", f"{figures['requests_per_second']:.1f}", "one image per request"),
        ("p50 latency ms", f"{figures['p50_ms']:.1f}", ""),
        ("p99 latency ms", f"{figures['p99_ms']:.1f}", ""),
        ("one client alone, p50 ms", f"{figures['one_client_p50_ms']:.1f}", "same server, same run"),
        ("server CPU ms/request", f"{figures['server_cpu_ms_per_request']:.1f}", "user + system, all cores"),
    ])
    print(f"\nwrote {write_json(args.out, figures)}")


if __name__ == "__main__":
    main()
