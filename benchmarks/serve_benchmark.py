"""Load test of `aocr serve` on 127.0.0.1: a bounded number of requests from N concurrent clients.

    python benchmarks/serve_benchmark.py --model-dir benchmarks/out/learning --requests 200 --clients 8

Exports the model's latest checkpoint, starts `aocr serve` on a free port, sends one
rendered image per request, and prints requests/s and p50/p99 latency beside the
single-image latency of the same model measured in-process in the same run. Writes
benchmarks/out/serve_benchmark.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, print_table, rendered_set, write_json  # noqa: E402


def start_server(export_dir: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "aocr", "serve", str(export_dir), "--port", "0",
                                "--grpc-port", "0", "--log-path", ""],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        if match:
            subprocess.Popen(["cat"], stdin=process.stderr, stdout=subprocess.DEVNULL)  # keep draining its log
            return process, match.group(1)
        if not line and process.poll() is not None:
            break
    process.kill()
    raise SystemExit("aocr serve did not start")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, help="a trained model dir (checkpoints and params.json)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    annotations, _ = rendered_set("rendered-test-500", 500, seed=12)
    images = [Path(line.split(" ", 1)[0]) for line in annotations.read_text().splitlines()][:args.requests]
    bodies = [json.dumps({"instances": [{"b64": base64.b64encode(p.read_bytes()).decode()}]}).encode()
              for p in images]
    export_dir = Path(tempfile.mkdtemp(prefix="aocr-serve-bench-"))
    subprocess.run([sys.executable, "-m", "aocr", "export", str(export_dir), "--model-dir", args.model_dir,
                    "--log-path", ""], check=True, capture_output=True)
    process, url = start_server(export_dir)
    try:
        def send(body: bytes) -> tuple[int, float]:
            request = urllib.request.Request(f"{url}/v1/models/aocr:predict", data=body,
                                             headers={"Content-Type": "application/json"})
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as e:
                status = e.code
            return status, time.perf_counter() - start

        send(bodies[0])  # warm-up
        single = [send(bodies[i % len(bodies)])[1] for i in range(20)]
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(send, (bodies[i % len(bodies)] for i in range(args.requests))))
        seconds = time.perf_counter() - start
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    latencies = [latency for _, latency in results]
    ok = sum(status == 200 for status, _ in results)
    figures = {"requests": args.requests, "clients": args.clients, "succeeded": ok,
               "requests_per_second": args.requests / seconds,
               "p50_ms": 1000 * percentile(latencies, 0.5), "p99_ms": 1000 * percentile(latencies, 0.99),
               "one_client_p50_ms": 1000 * statistics.median(single), "machine": machine()}
    print_table([
        ("figure", "measured", "note"),
        ("requests", f"{ok}/{args.requests} succeeded", f"{args.clients} concurrent clients"),
        ("requests/s", f"{figures['requests_per_second']:.1f}", "one image per request"),
        ("p50 latency ms", f"{figures['p50_ms']:.1f}", ""),
        ("p99 latency ms", f"{figures['p99_ms']:.1f}", ""),
        ("one client alone, p50 ms", f"{figures['one_client_p50_ms']:.1f}", "same server, same run"),
    ])
    print(f"\nwrote {write_json('serve_benchmark.json', figures)}")


if __name__ == "__main__":
    main()
