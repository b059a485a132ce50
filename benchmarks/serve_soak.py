"""Serving soak: `aocr serve` takes many requests from concurrent clients, a tenth of them malformed.

    nice -n 19 python benchmarks/serve_soak.py [--requests 20000] [--clients 16] [--model-dir DIR]

Without --model-dir a tiny model is trained for a few steps first (the figures are about the server,
not accuracy). The model is exported and served by a real `aocr serve` on 127.0.0.1. A reference
answer for each good image is asked for once, alone, at the start; then the requests go out in a
fixed shuffled order from --clients threads, each on a new connection. A tenth are bad, in equal shares:
bad JSON, bad base64, bytes that are not an image, the PNG, GIF and JPEG bombs of
tools/hostile_images.py, bodies over --max-request-bytes (just over: read, then refused; far over:
refused from the Content-Length), and clients that close (or reset) the connection mid-body. A share
of the good, not-an-image and bomb requests go over gRPC where tensorflow-serving-api is installed.

Checks: every good request gets its reference text (and probability, to 1e-5 of it), every bad one a
4xx (gRPC: INVALID_ARGUMENT), no 5xx, no request left unanswered past its timeout; the server's
resident memory (VmRSS) after the soak within 10% of after the first 1,000 requests; its threads and
open file descriptors after the soak no more than after the first 1,000; after the soak it still
answers right and exits 0 on SIGTERM.
Prints a table, writes benchmarks/out/serve_soak.json, exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ROOT,
    disconnect,
    export_model,
    free_port,
    grpc_answer,
    grpc_available,
    grpc_stub,
    machine,
    memory_mib,
    post,
    predict_body,
    predict_request,
    print_table,
    rest_answer,
    settled,
    start_server,
    threads_and_fds,
    tiny_model,
    write_json,
)

sys.path.insert(0, str(ROOT))

from tools import hostile_images  # noqa: E402

TIMEOUT_S = 60.0  # a client's wait for one answer; the server's own request timeout is 30 s
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # aocr serve's default --max-request-bytes
WAITRESS_SLACK = 1024  # aocr serve lets waitress read bodies up to the limit + this, then refuses them itself
PROBABILITY_TOLERANCE = 1e-5  # relative: a batch may round differently from a request alone; a mix-up differs more
PROBLEM = re.compile(r"WARNING|ERROR|Traceback| 5\d\d \d+\.\d ms$")  # a server log line worth showing
FIRST = 1000  # the memory, thread and descriptor figures are compared with those after this many requests
BAD_KINDS = ["bad_json", "bad_base64", "not_image", "png_bomb", "gif_bomb", "jpeg_bomb", "oversized", "disconnect",
             "unsized", "hostile_json", "too_many"]
GRPC_KINDS = {"good": 10, "not_image": 4, "png_bomb": 4, "gif_bomb": 4, "jpeg_bomb": 4, "unsized": 4}  # 1 in N


@dataclass
class Result:
    kind: str
    protocol: str  # "rest", "grpc" or "raw" (a raw socket)
    outcome: str  # "200", "413", "INVALID_ARGUMENT" (gRPC), "closed", "error ConnectionResetError", "timeout"
    ok: bool
    seconds: float
    note: str = ""


def good_images() -> list[bytes]:
    """Plain text crops of several sizes, texts and formats."""
    images = []
    for number, (size, text) in enumerate([((120, 32), "42"), ((100, 32), "731"), ((160, 40), "2024"),
                                           ((80, 24), "9"), ((120, 32), "5568"), ((140, 36), "86"),
                                           ((96, 28), "310"), ((120, 32), "77")]):
        image = hostile_images.text_image("RGB", size, text)
        images.append(hostile_images.encode(image, "PNG" if number % 2 else "JPEG"))
    return images


def bad_bodies(good: bytes) -> dict[str, list[bytes]]:
    """The bodies of each bad kind sent over REST (its variants are used in turn)."""
    return {
        "bad_json": [b"{not json", b'{"instances": [{"b64": "', b"\xff\xfe\x00garbage", b"", b"[1]", b"null"],
        "bad_base64": [b'{"instances": [{"b64": "***"}]}', b'{"instances": [{"b64": "A"}]}',
                       '{"instances": [{"b64": "éé"}]}'.encode(), b'{"inputs": {"input": {"b64": "%%%%"}}}'],
        "not_image": [predict_body(b"plain text"), predict_body(bytes(range(256)) * 4), predict_body(good[:100]),
                      predict_body(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), predict_body(b"GIF89a" + b"\xff" * 20)],
        "png_bomb": [predict_body(hostile_images.png_bomb())],
        "gif_bomb": [predict_body(hostile_images.gif_bomb())],
        "jpeg_bomb": [predict_body(hostile_images.jpeg_bomb())],
        "unsized": [predict_body(image) for image in unsized_images()],
        "hostile_json": [b"[" * 100_000, b'{"instances": [' + b"9" * 5000 + b"]}",
                         b'{"instances": ' + b"[" * 65 + b"1" + b"]" * 65 + b"}"],
        "too_many": [predict_body(*[hostile_images.gif(1, 1)] * 1025)],
    }


def unsized_images() -> list[bytes]:
    """Images whose size their header does not give, so a server must not decode them."""
    return [hostile_images.webp_lossless_header(), hostile_images.png_with_a_broken_chunk(),
            hostile_images.png_with_a_compressed_chunk()]


def grpc_payloads(good: bytes) -> dict[str, list[bytes]]:
    """The image bytes of each bad kind sent over gRPC."""
    return {"not_image": [b"plain text", good[:100], b""], "png_bomb": [hostile_images.png_bomb()],
            "gif_bomb": [hostile_images.gif_bomb()], "jpeg_bomb": [hostile_images.jpeg_bomb()],
            "unsized": unsized_images()}


def schedule(requests: int, seed: int) -> list[str]:
    """The kind of each request: a tenth bad, in equal shares of BAD_KINDS, in a shuffled order."""
    bad = requests // 10
    kinds = [BAD_KINDS[i % len(BAD_KINDS)] for i in range(bad)] + ["good"] * (requests - bad)
    random.Random(seed).shuffle(kinds)
    return kinds


class Client:
    """Sends request number i of the schedule and checks its answer."""

    def __init__(self, url: str, grpc_address: str | None, images: list[bytes], kinds: list[str]) -> None:
        self.url = url
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.images, self.kinds = images, kinds
        counts: Counter[str] = Counter()
        self.nth = []  # request i is the nth of its kind: its variant, and whether it goes over gRPC
        for kind in kinds:
            self.nth.append(counts[kind])
            counts[kind] += 1
        self.reference: list[tuple[str, float]] = []
        self.bodies = bad_bodies(images[0])
        self.grpc = grpc_client(grpc_address) if grpc_address else None
        self.grpc_payloads = grpc_payloads(images[0])
        self.seen: Counter[str] = Counter()

    def good_request(self, i: int) -> tuple[list[int], bytes]:
        """Image numbers of good request i (every fifth has three images) and its REST body."""
        numbers = [i % len(self.images)] if i % 5 else [(i + k) % len(self.images) for k in range(3)]
        return numbers, predict_body(*(self.images[n] for n in numbers))

    def __call__(self, i: int) -> Result:
        kind = self.kinds[i]
        grpc_share = GRPC_KINDS.get(kind, 0) if self.grpc is not None else 0
        protocol = "grpc" if grpc_share and self.nth[i] % grpc_share == grpc_share - 1 else "rest"
        start = time.perf_counter()
        try:
            result = self.send_grpc(kind, i) if protocol == "grpc" else self.send_rest(kind, i)
        except TimeoutError:
            result = Result(kind, protocol, "timeout", False, 0.0)
        except Exception as e:  # noqa: BLE001 - any failure of the exchange is an outcome to count
            result = Result(kind, protocol, f"error {type(e).__name__}", False, 0.0, str(e)[:200])
        result.seconds = time.perf_counter() - start
        return result

    def right(self, numbers: list[int], texts: list[str], probabilities: list[float]) -> bool:
        """The reference text of each image, and its probability within PROBABILITY_TOLERANCE of the reference's."""
        expected = [self.reference[n] for n in numbers]
        return texts == [text for text, _ in expected] and all(
            abs(p - q) <= PROBABILITY_TOLERANCE * abs(q) for p, (_, q) in zip(probabilities, expected, strict=True))

    def send_rest(self, kind: str, i: int) -> Result:
        if kind == "good":
            numbers, body = self.good_request(i)
            status, answer, note = post(self.url, body, timeout=TIMEOUT_S)
            right = status == 200 and self.right(numbers, *rest_answer(answer))
            return Result(kind, "rest", str(status) if status != 200 or right else "200 wrong answer",
                          status == 200 and right, 0.0, note)
        if kind == "disconnect":
            return Result(kind, "raw", "closed", True, 0.0, disconnect(self.host, self.port, self.nth[i],
                                                                        self.good_request(i)[1]))
        if kind == "oversized":
            far = self.nth[i] % 2 == 1
            length = 2 * MAX_REQUEST_BYTES if far else MAX_REQUEST_BYTES + WAITRESS_SLACK // 2
            status, _, note = post(self.url, b" " * length, timeout=TIMEOUT_S)
            what = "far over: refused from its Content-Length" if far else "just over: read, then refused"
            return Result(kind, "rest", str(status), 400 <= status < 500, 0.0, f"{what}{'; ' if note else ''}{note}")
        variants = self.bodies[kind]
        status, _, note = post(self.url, variants[self.nth[i] % len(variants)], timeout=TIMEOUT_S)
        return Result(kind, "rest", str(status), 400 <= status < 500, 0.0, note)

    def send_grpc(self, kind: str, i: int) -> Result:
        predict, _ = self.grpc
        if kind == "good":
            numbers, _ = self.good_request(i)
            code, answer = predict([self.images[n] for n in numbers])
            right = code == "OK" and self.right(numbers, *answer)
            outcome = code if code != "OK" or right else "OK wrong answer"
            return Result(kind, "grpc", outcome, code == "OK" and right, 0.0)
        variants = self.grpc_payloads[kind]
        code, _ = predict([variants[(self.nth[i] // GRPC_KINDS[kind]) % len(variants)]])
        return Result(kind, "grpc", code, code == "INVALID_ARGUMENT", 0.0)


Answer = tuple[list[str], list[float]]


def grpc_client(address: str) -> tuple[Callable[[list[bytes]], tuple[str, Answer | None]], object]:
    """predict(images) -> (status code name, (texts, probabilities)) through tensorflow-serving-api's stub, and
    its channel."""
    import grpc

    stub, channel = grpc_stub(address)

    def predict(images: list[bytes]) -> tuple[str, Answer | None]:
        try:
            response = stub.Predict(predict_request(images), timeout=TIMEOUT_S)
        except grpc.RpcError as e:
            return e.code().name, None
        return "OK", grpc_answer(response)

    return predict, channel


def reference_answers(client: Client) -> list[tuple[str, float]]:
    """Each good image's (text, probability), asked for alone over REST."""
    answers = []
    for image in client.images:
        status, answer, _ = post(client.url, predict_body(image))
        if status != 200:
            raise SystemExit(f"the reference request failed: {status} {answer[:200]!r}")
        texts, probabilities = rest_answer(answer)
        answers.append((texts[0], probabilities[0]))
    return answers


def run_phase(client: Client, clients: int, numbers: range, pid: int, samples: list[dict], every: int) -> list[Result]:
    """Requests `numbers` from `clients` threads; the server's VmRSS, threads and descriptors are sampled
    (unsettled, as they are) each time another `every` requests are answered."""
    results = []
    with ThreadPoolExecutor(clients) as pool:
        for result in pool.map(client, numbers):
            results.append(result)
            done = numbers.start + len(results)
            if done % every == 0:
                threads, fds = threads_and_fds(pid)
                samples.append({"requests": done, "rss_mib": memory_mib(pid, "VmRSS"), "threads": threads, "fds": fds})
    return results


def warm_up(client: Client, clients: int) -> None:
    """Every client at once, good requests over REST and gRPC: the server's thread pools reach their size."""
    def one(i: int) -> None:
        status, _, _ = post(client.url, predict_body(client.images[i % len(client.images)]))
        if client.grpc is not None:
            client.grpc[0]([client.images[i % len(client.images)]])

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(clients * 4)))


def summarize(results: list[Result]) -> dict:
    by_kind: dict[str, dict] = {}
    for result in results:
        entry = by_kind.setdefault(result.kind, {"sent": 0, "outcomes": Counter(), "failed": 0, "notes": Counter()})
        entry["sent"] += 1
        entry["outcomes"][f"{result.protocol} {result.outcome}"] += 1
        entry["failed"] += not result.ok
        if result.note:
            entry["notes"][result.note] += 1
    return {kind: {**entry, "outcomes": dict(entry["outcomes"]), "notes": dict(entry["notes"])}
            for kind, entry in sorted(by_kind.items(), key=lambda item: (item[0] != "good", item[0]))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--model-dir", default=None, help="a trained model dir (default: train a tiny one)")
    parser.add_argument("--no-grpc", action="store_true", help="REST only")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--out", default="serve_soak.json", help="file name under benchmarks/out")
    args = parser.parse_args(argv)
    first = min(FIRST, args.requests)
    with tempfile.TemporaryDirectory(prefix="aocr-soak-") as temp:
        work = Path(temp)
        print("training a tiny model..." if not args.model_dir else "exporting...", flush=True)
        model = Path(args.model_dir) if args.model_dir else tiny_model(work, steps=20)
        export_dir = export_model(model, work / "export")
        grpc_port = free_port() if not args.no_grpc and grpc_available() else 0
        log_path = work / "serve.log"
        with open(log_path, "w") as log:
            process, url = start_server(export_dir, grpc_port, [], log=log)
            try:
                client = Client(url, f"127.0.0.1:{grpc_port}" if grpc_port else None, good_images(),
                                schedule(args.requests, args.seed))
                client.reference = reference_answers(client)
                warm_up(client, args.clients)
                start_figures = settled(process.pid)
                print(f"soaking: {args.requests} requests from {args.clients} clients", flush=True)
                started = time.perf_counter()
                samples: list[dict] = []
                every = max(1, args.requests // 20)  # 20 samples
                results = run_phase(client, args.clients, range(first), process.pid, samples, every)
                first_seconds = time.perf_counter() - started
                after_first = settled(process.pid)
                started_rest = time.perf_counter()
                results += run_phase(client, args.clients, range(first, args.requests), process.pid, samples, every)
                seconds = first_seconds + time.perf_counter() - started_rest
                after_all = settled(process.pid)
                status, answer, _ = post(client.url, predict_body(client.images[1]))
                still_right = status == 200 and client.right([1], *rest_answer(answer))
                alive = process.poll() is None
            finally:
                if client.grpc is not None:
                    client.grpc[1].close()
                process.send_signal(signal.SIGTERM)
                try:
                    exit_status = process.wait(timeout=60)
                except Exception:
                    process.kill()
                    exit_status = None
        server_log = log_path.read_text(errors="replace")
    kinds = summarize(results)
    five_hundreds = sum(1 for r in results if r.outcome[:1] == "5")
    timeouts = sum(1 for r in results if r.outcome == "timeout")
    wrong = sum(1 for r in results if "wrong" in r.outcome)
    failed = sum(not r.ok for r in results)
    rss_growth = (after_all[2] - after_first[2]) / after_first[2]
    checks = {
        "every request answered as expected": failed == 0,
        "no wrong answer": wrong == 0,
        "no 5xx": five_hundreds == 0,
        "no timeout": timeouts == 0,
        f"VmRSS after the soak within 10% of after {first}": abs(rss_growth) <= 0.10,
        "threads: no leak": after_all[0] <= after_first[0],
        "file descriptors: no leak": after_all[1] <= after_first[1],
        "still answers right after the soak": still_right and alive,
        "exits 0 on SIGTERM": exit_status == 0,
        "no traceback in the server's log": "Traceback" not in server_log,
    }
    figures = {
        "requests": args.requests, "clients": args.clients, "grpc": bool(grpc_port), "seconds": seconds,
        "requests_per_second": args.requests / seconds, "kinds": kinds, "failed": failed, "wrong_answers": wrong,
        "5xx": five_hundreds, "timeouts": timeouts, "max_latency_s": max(r.seconds for r in results),
        "reference_answers": client.reference,
        "start": dict(zip(("threads", "fds", "rss_mib"), start_figures, strict=True)),
        f"after_{first}": dict(zip(("threads", "fds", "rss_mib"), after_first, strict=True)),
        "after_soak": dict(zip(("threads", "fds", "rss_mib"), after_all, strict=True)),
        "rss_growth": rss_growth, "samples": samples, "server_exit_status": exit_status,
        "server_log_problems": [line for line in server_log.splitlines() if PROBLEM.search(line)][:20],
        "checks": checks, "machine": machine(),
    }
    rows = [("requests", "outcomes (protocol status: count)", "failed")]
    for kind, entry in kinds.items():
        outcomes = ", ".join(f"{name}: {count}" for name, count in sorted(entry["outcomes"].items()))
        rows.append((f"{kind} ({entry['sent']})", outcomes, str(entry["failed"])))
    rows += [
        ("wrong answers", str(wrong), f"{len({text for text, _ in client.reference})} distinct reference texts, "
                                      f"{len({p for _, p in client.reference})} probabilities"),
        ("5xx / timeouts", f"{five_hundreds} / {timeouts}", f"longest request {figures['max_latency_s']:.2f} s"),
        ("VmRSS MiB", f"{start_figures[2]:.0f} at start, {after_first[2]:.0f} after {first}, "
                      f"{after_all[2]:.0f} after {args.requests}", f"{100 * rss_growth:+.1f}%"),
        ("VmRSS MiB during", ", ".join(f"{sample['rss_mib']:.0f}" for sample in samples[4::5]),
         f"after every {5 * every} requests (a quarter)"),
        ("threads", f"{start_figures[0]} at start, {after_first[0]} after {first}, {after_all[0]} after",
         ""),
        ("open fds", f"{start_figures[1]} at start, {after_first[1]} after {first}, {after_all[1]} after", ""),
        ("wall time", f"{seconds:.0f} s", f"{figures['requests_per_second']:.0f} requests/s"),
        ("server exit", str(exit_status), "SIGTERM after the soak"),
    ]
    print()
    print_table(rows)
    print()
    print_table([("check", "passed", "")] + [(name, "yes" if passed else "NO", "") for name, passed in checks.items()])
    print(f"\nwrote {write_json(args.out, figures)}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
