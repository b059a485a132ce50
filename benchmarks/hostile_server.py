"""Hostile-request suite (issue 26): a real `aocr serve` on 127.0.0.1, REST and gRPC, against every attack found on
it and the older ones, one request (or one burst) after another.

    nice -n 10 python benchmarks/hostile_server.py [--model-dir DIR]

Without --model-dir a tiny model is trained for two steps first (the figures are about the server, not accuracy).
It is exported and served with the default flags and --log-path in a temporary folder. A plain image is read once
over each API for its reference answer; then each attack is sent. After each, the server's peak resident memory
during it is read (VmHWM of /proc/PID/status, set back to VmRSS before the attack where Linux allows), and the
plain image is sent again over the same API.

Prints a line per attack: its name; the answer (HTTP status or gRPC code, and the first words of the error;
"closed" where the client leaves without waiting; "x N" for N requests answered alike); the seconds it took; the
VmHWM in MiB; and whether the plain image got its reference answer right after. Then a summary line and the
checks, each a target of the issue:

    the worst VmHWM within 300 MiB of the VmHWM after the first good request
    no 5xx (gRPC: INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED...) that the attack does not allow
    the good image answered right after every attack
    every answer one the attack expects: 4xx (gRPC INVALID_ARGUMENT or RESOURCE_EXHAUSTED) for a hostile request
    no request left unanswered past its timeout (a hang; for a good request among 100 idle connections, 20 s)
    no traceback in the server's log
    no thread or file-descriptor leak: the counts at the end no more than at the start (after a warm-up)
    aocr.log grows by at most 1 KiB per 404 of a 200 KB path
    the server exits 0 on SIGTERM

Writes benchmarks/out/hostile_server.json; exits 0 when every check holds, 1 otherwise. Takes about 90 s on 2 idle
cores, 16 s of it the idle connections.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    PREDICT_PATH,
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
    reset_peak,
    rest_answer,
    settled,
    start_server,
    tiny_model,
    write_json,
)

sys.path.insert(0, str(ROOT))

from aocr.core import defaults  # noqa: E402
from aocr.serving.inputs import MAX_IMAGE_MODEL_PIXELS  # noqa: E402
from tools import hostile_images  # noqa: E402

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # aocr serve's default --max-request-bytes, also its gRPC message limit
TIMEOUT_S = 60.0  # the longest wait for one answer; the server's own request timeout is 30 s
PEAK_BUDGET_MIB = 300.0  # the worst VmHWM over the VmHWM after the first good request
PROBABILITY_TOLERANCE = 1e-5  # relative: the good image is always sent alone, so its answer should not move
TINY_GIFS = 20_000
PIXELS_HEIGHT = 32  # the tiny model's image height, as its pixels signature takes images
PIXELS_JSON_WIDTH = 75_000  # "[0]," per pixel: the widest image a JSON body under the limit holds
FIFTY_MP = (7071, 7071)  # 49,999,041 pixels: a large photo, over the server's limit
AT_LIMIT = (math.isqrt(defaults.MAX_REQUEST_PIXELS),) * 2  # just under the server's pixel limit of an image
IDLE_CONNECTIONS = 100
IDLE_BOUND_S = 20.0  # a good request among idle connections: the server's 15 s idle timeout, and slack
FLOOD_REQUESTS = 100
FLOOD_PATH_CHARS = 200_000
LOG_BYTES_PER_404 = 1024
CONCURRENT_RPCS = 300
WARM_UP_RPCS = 128  # enough at once for the gRPC server's 64 request threads to be started
FIVE_XX_CODES = {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
MESSAGE_CHARS = 500  # of an error message, kept
PROBLEM = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b")  # a server log line to show with its attack
NOTABLE = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b|\bWARNING\b")  # kept from the whole log

Answer = tuple[list[str], list[float]]


@dataclass
class Outcome:
    """One request's answer: an HTTP status ("400"), a gRPC code ("INVALID_ARGUMENT"), "closed" (the client left
    without waiting), "timeout" (no answer within the client's bound) or "error <exception>"; a good image
    answered with another text or probability is "200 wrong answer" or "OK wrong answer"."""

    code: str
    message: str = ""
    body: bytes = field(default=b"", repr=False)  # a REST answer's body

    @property
    def five_xx(self) -> bool:
        """An HTTP status of 500 or more, or a gRPC code TF Serving's REST API would answer so."""
        return (self.code[:1] == "5" and self.code[:3].isdigit()) or self.code in FIVE_XX_CODES


class Lines(list):
    """The server's stderr, a line an item, as start_server's reader thread writes it."""

    def write(self, line: str) -> None:
        self.append(line)


@dataclass
class Target:
    """The server under attack, and what the suite learns of it."""

    process: subprocess.Popen
    url: str
    log_path: Path  # the server's --log-path
    stderr: Lines
    good: bytes  # the plain image sent after each attack
    stub: Any = None  # a PredictionServiceStub, None without gRPC
    reference: dict[str, Answer] = field(default_factory=dict)  # "rest" / "grpc" -> the good image's answer
    figures: dict = field(default_factory=dict)  # what an attack measures besides its answers

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)


@dataclass(frozen=True)
class Attack:
    name: str
    protocol: str  # "rest", "grpc" or "both": the APIs the good image is sent over after it
    send: Callable[[Target], list[Outcome]]
    expected: frozenset[str]  # the outcome codes that are right for it


def error_words(answer: bytes) -> str:
    """The error of a REST answer: its JSON "error", or the first line of a plain-text answer (waitress's own)."""
    try:
        doc = json.loads(answer)
    except ValueError:
        lines = answer.decode("utf-8", "replace").strip().splitlines()
        return lines[0] if lines else ""
    return str(doc.get("error", "")) if isinstance(doc, dict) else ""


def rest(target: Target, body: bytes, path: str = PREDICT_PATH, method: str = "POST",
         timeout: float = TIMEOUT_S) -> Outcome:
    """One REST request on a new connection."""
    try:
        status, answer, _ = post(target.url, body, path, timeout, method)
    except TimeoutError:
        return Outcome("timeout")
    except (OSError, http.client.HTTPException) as e:
        return Outcome(f"error {type(e).__name__}", str(e))
    if status == 200:
        return Outcome("200", "", answer)
    return Outcome(str(status), error_words(answer)[:MESSAGE_CHARS])


def rpc_outcome(error: Any, seconds: float, timeout: float) -> Outcome:
    """A failed RPC's outcome; the client's own deadline passing is a timeout (a hang), not the server's answer."""
    code = error.code().name
    if code == "DEADLINE_EXCEEDED" and seconds >= timeout - 1:
        return Outcome("timeout", (error.details() or "")[:MESSAGE_CHARS])
    return Outcome(code, (error.details() or "")[:MESSAGE_CHARS])


def grpc_call(target: Target, request: Any, timeout: float = TIMEOUT_S) -> tuple[Outcome, Any]:
    """One Predict RPC: (its outcome, its response or None)."""
    import grpc

    started = time.monotonic()
    try:
        return Outcome("OK"), target.stub.Predict(request, timeout=timeout)
    except grpc.RpcError as e:
        return rpc_outcome(e, time.monotonic() - started, timeout), None


def right(answer: Answer, reference: Answer | None) -> bool:
    """The reference text of the one image, and its probability within PROBABILITY_TOLERANCE."""
    if reference is None:
        return True
    (texts, probabilities), (expected_texts, expected_probabilities) = answer, reference
    return texts == expected_texts and all(abs(p - q) <= PROBABILITY_TOLERANCE * abs(q)
                                           for p, q in zip(probabilities, expected_probabilities, strict=True))


def ask_good(target: Target, protocol: str, timeout: float = TIMEOUT_S) -> tuple[Outcome, Answer | None]:
    """The good image over "rest" or "grpc": the outcome, "wrong answer" added where it differs from the reference."""
    if protocol == "grpc":
        outcome, response = grpc_call(target, predict_request([target.good]), timeout)
        answer = grpc_answer(response) if response is not None else None
    else:
        outcome = rest(target, predict_body(target.good), timeout=timeout)
        answer = rest_answer(outcome.body) if outcome.code == "200" else None
    if answer is not None and not right(answer, target.reference.get(protocol)):
        return Outcome(f"{outcome.code} wrong answer", f"{answer[0]} {answer[1]}"), answer
    return outcome, answer


def good_outcome(target: Target, protocol: str, timeout: float = TIMEOUT_S) -> Outcome:
    return ask_good(target, protocol, timeout)[0]


def good_after(target: Target, protocol: str) -> list[str]:
    """The good image over the attack's API(s): the codes of the failed answers ([] when all were right)."""
    codes = [good_outcome(target, one).code for one in (["rest", "grpc"] if protocol == "both" else [protocol])]
    return [code for code in codes if code not in ("200", "OK")]


def rest_attack(name: str, make_body: Callable[[], bytes], expected: tuple[str, ...] = ("400",),
                path: str = PREDICT_PATH) -> Attack:
    return Attack(name, "rest", lambda target: [rest(target, make_body(), path)], frozenset(expected))


def image_attack(name: str, make_image: Callable[[], bytes], expected: tuple[str, ...] = ("400",)) -> Attack:
    return rest_attack(name, lambda: predict_body(make_image()), expected)


def grpc_attack(name: str, make_request: Callable[[Target], Any],
                expected: tuple[str, ...] = ("INVALID_ARGUMENT",)) -> Attack:
    return Attack(name, "grpc", lambda target: [grpc_call(target, make_request(target))[0]], frozenset(expected))


def empty_chunks_fitting(size: int) -> int:
    """How many empty chunks make hostile_images.png_of_empty_chunks at most `size` bytes."""
    return (size - len(hostile_images.png_of_empty_chunks(0))) // 12


def vanish(target: Target, variant: int) -> list[Outcome]:
    """A client that sends part of a good request's body and leaves (common.disconnect)."""
    host, port = target.host_port
    try:
        note = disconnect(host, port, variant, predict_body(target.good), TIMEOUT_S)
    except OSError as e:
        note = f"{type(e).__name__} while sending"
    return [Outcome("closed", note)]


def payload_attacks() -> list[Attack]:
    """Bodies that are not a request, or too big or too deep to be one, and clients that leave mid-body."""
    just_over = MAX_REQUEST_BYTES + 512  # waitress reads it (it allows 1 KiB more), then aocr refuses it
    leaf = json.dumps({"b64": "R0lGODlhAQABAAAAACw="}).encode()
    return [
        rest_attack("bad JSON", lambda: b"{not json"),
        rest_attack("bad base64", lambda: b'{"instances": [{"b64": "***"}]}'),
        image_attack("bytes that are not an image", lambda: b"plain text"),
        rest_attack(f"body just over the limit ({just_over:,} bytes)", lambda: b" " * just_over, ("413",)),
        rest_attack("body twice the limit", lambda: b" " * (2 * MAX_REQUEST_BYTES), ("413",)),
        rest_attack("JSON nested 100,000 deep", lambda: b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        rest_attack("an integer of 5,000 digits", lambda: b'{"instances": [' + b"9" * 5000 + b"]}"),
        rest_attack("lists nested 65 deep", lambda: b'{"inputs": ' + b"[" * 65 + leaf + b"]" * 65 + b"}"),
        Attack("half a body, then gone", "rest", lambda target: vanish(target, 1), frozenset({"closed"})),
        Attack("700 KB of 3 MB, then a reset", "rest", lambda target: vanish(target, 3), frozenset({"closed"})),
    ]


def image_attacks() -> list[Attack]:
    """Images a decoder must not be given: bombs, headers that do not give their size, headers slow to read."""
    webp = hostile_images.webp_lossless_header()
    chunks = empty_chunks_fitting((MAX_REQUEST_BYTES - 64) * 3 // 4)  # the largest that base64 fits in a body

    def compressed(kind: bytes, method: int, inflated: int = 16) -> Callable[[], bytes]:
        return lambda: hostile_images.png_with_a_compressed_chunk(kind, method, inflated)

    attacks = [
        image_attack(f"webp declaring 16383x16383 ({len(webp)} bytes)", lambda: webp),
        image_attack("png 20000x20000, tEXt with a wrong CRC", hostile_images.png_with_a_broken_chunk),
        image_attack("png 20000x20000, zTXt of compression method 1", compressed(b"zTXt", 1)),
        image_attack("png 20000x20000, iCCP of compression method 1", compressed(b"iCCP", 1)),
        image_attack("png 20000x20000, zTXt inflating to 2 MB", compressed(b"zTXt", 0, 2_000_000)),
        image_attack(f"png of {chunks:,} empty chunks ({12 * chunks / 1e6:.1f} MB)",
                     lambda: hostile_images.png_of_empty_chunks(chunks)),
        image_attack("png 120x32 whose data inflate to 16 bytes", lambda: hostile_images.png_declaring(120, 32)),
    ]
    for name, make in hostile_images.HOSTILE.items():  # the bombs, and 10,000 frames of 120x32 (38 MP: allowed)
        attacks.append(image_attack(name, make, ("200", "400") if "frames" in name else ("400",)))
    return attacks


def count_attacks() -> list[Attack]:
    """Requests of many images: the per-request limits (images, pixels in all) answer 429."""
    tiny, streak = hostile_images.gif(1, 1), hostile_images.gif(1000, 1)
    fifty = hostile_images.png_declaring(*FIFTY_MP)
    return [
        rest_attack(f"{TINY_GIFS:,} tiny GIFs to n_best",
                    lambda: predict_body(*[tiny] * TINY_GIFS, signature_name="n_best"), ("429",)),
        rest_attack(f"{TINY_GIFS:,} tiny GIFs to serving_default", lambda: predict_body(*[tiny] * TINY_GIFS), ("429",)),
        rest_attack("2,000 images declaring 50 MP each", lambda: predict_body(*[fifty] * 2000), ("429",)),
        rest_attack("1,000 images declaring 50 MP each", lambda: predict_body(*[fifty] * 1000), ("400", "429")),
        rest_attack("1,024 GIFs of 1000x1, as wide as the model reads them", lambda: predict_body(*[streak] * 1024),
                    ("200",)),
    ]


def float_request(target: Target) -> Any:
    """A PredictRequest whose input is a DT_FLOAT tensor."""
    from tensorflow.core.framework import types_pb2

    request = predict_request([], shape=[1])
    request.inputs["input"].dtype = types_pb2.DT_FLOAT
    request.inputs["input"].float_val.append(0.5)
    return request


def concurrent_rpcs(target: Target, count: int = CONCURRENT_RPCS) -> list[Outcome]:
    """`count` Predict RPCs of the good image at once on one channel: each must be answered within its bound,
    OK with the reference answer or refused."""
    import grpc

    request = predict_request([target.good])
    started = time.monotonic()
    calls = [target.stub.Predict.future(request, timeout=TIMEOUT_S) for _ in range(count)]
    outcomes = []
    for call in calls:
        try:
            response = call.result(timeout=max(0.0, started + TIMEOUT_S + 5 - time.monotonic()))
        except grpc.FutureTimeoutError:
            call.cancel()
            outcomes.append(Outcome("timeout"))
        except grpc.RpcError as e:
            outcomes.append(rpc_outcome(e, time.monotonic() - started, TIMEOUT_S))
        else:
            ok = right(grpc_answer(response), target.reference.get("grpc"))
            outcomes.append(Outcome("OK" if ok else "OK wrong answer"))
    return outcomes


def co_batched(target: Target) -> list[Outcome]:
    """Good requests over both APIs at once, with three bad ones among them: only the bad ones may fail."""
    jobs: list[Callable[[], Outcome]] = [lambda: good_outcome(target, "rest")] * 8
    jobs += [lambda: good_outcome(target, "grpc")] * 8
    jobs += [lambda: rest(target, predict_body(b"plain text")),
             lambda: grpc_call(target, predict_request([target.good], shape=[4]))[0],
             lambda: rest(target, predict_body(hostile_images.jpeg_bomb()))]
    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(lambda job: job(), jobs))


def grpc_attacks() -> list[Attack]:
    """Tensors that do not hold what they declare, and more RPCs than the server takes at once."""
    tiny, webp = hostile_images.gif(1, 1), hostile_images.webp_lossless_header()
    chunks = empty_chunks_fitting(MAX_REQUEST_BYTES - 1024)
    over = 11 * 1024 * 1024
    refused = ("RESOURCE_EXHAUSTED",)
    return [
        grpc_attack("gRPC shape [1000000000], no values", lambda t: predict_request([], shape=[10**9])),
        grpc_attack("gRPC shape [4], one value", lambda t: predict_request([t.good], shape=[4])),
        grpc_attack("gRPC a DT_FLOAT tensor", float_request),
        grpc_attack(f"gRPC {TINY_GIFS:,} tiny GIFs", lambda t: predict_request([tiny] * TINY_GIFS), refused),
        grpc_attack(f"gRPC webp declaring 16383x16383 ({len(webp)} bytes)", lambda t: predict_request([webp])),
        grpc_attack(f"gRPC png of {chunks:,} empty chunks ({12 * chunks / 1e6:.1f} MB)",
                    lambda t: predict_request([hostile_images.png_of_empty_chunks(chunks)])),
        grpc_attack(f"gRPC a message over the limit ({over / 1e6:.1f} MB)",
                    lambda t: predict_request([b"\0" * over]), refused),
        Attack(f"gRPC {CONCURRENT_RPCS} concurrent Predict RPCs", "grpc", concurrent_rpcs,
               frozenset({"OK", "RESOURCE_EXHAUSTED", "UNAVAILABLE"})),
        Attack("co-batched: 16 good requests, 3 bad ones", "both", co_batched,
               frozenset({"200", "OK", "400", "INVALID_ARGUMENT"})),
    ]


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed a connection (a read finds its end) without the client reading an answer."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def idle_connections(target: Target) -> list[Outcome]:
    """IDLE_CONNECTIONS connections that send nothing, then the good image: answered within IDLE_BOUND_S?"""
    host, port = target.host_port
    sockets: list[socket.socket] = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            sockets.append(socket.create_connection((host, port), timeout=5))
        started = time.monotonic()
        outcome = good_outcome(target, "rest", timeout=IDLE_BOUND_S)
        seconds = time.monotonic() - started
        closed = sum(closed_by_server(sock) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()
    if outcome.code == "200" and seconds > IDLE_BOUND_S:
        outcome = Outcome("timeout")
    target.figures.update(idle_good_request_s=seconds, idle_closed_by_server=closed)
    outcome.message = f"answered in {seconds:.1f} s; by then the server had closed {closed} of the {len(sockets)}"
    return [outcome]


def log_bytes(path: Path) -> int:
    """The size of a log file and its rolled-over copies (aocr.log.1, ...)."""
    return sum(file.stat().st_size for file in path.parent.glob(path.name + "*"))


def not_found_flood(target: Target) -> list[Outcome]:
    """FLOOD_REQUESTS GETs of a FLOOD_PATH_CHARS path, a 404 each: how much they add to the server's log file."""
    before = log_bytes(target.log_path)
    path = "/" + "x" * FLOOD_PATH_CHARS
    outcomes = [rest(target, b"", path, "GET") for _ in range(FLOOD_REQUESTS)]
    grown = log_bytes(target.log_path) - before
    target.figures["log_bytes_per_404"] = grown / FLOOD_REQUESTS
    outcomes[0].message = f"aocr.log grew {grown:,} bytes, {grown / FLOOD_REQUESTS:,.0f} a request"
    return outcomes


def pixels_json(count: int, width: int) -> bytes:
    """A `pixels` request in the columnar format: `count` black images of PIXELS_HEIGHT x width, each as wide as
    the tensor."""
    row = "[" + ",".join(["[0]"] * width) + "]"  # [width, 1]
    images = "[" + ",".join(["[" + ",".join([row] * PIXELS_HEIGHT) + "]"] * count) + "]"
    return f'{{"signature_name": "pixels", "inputs": {{"images": {images}, "widths": {[width] * count}}}}}'.encode()


def pixels_request(count: int, width: int, declared_width: int | None = None) -> Any:
    """A `pixels` PredictRequest whose images travel as tensor_content: `count` black images PIXELS_HEIGHT x width,
    declaring `declared_width` where one is given (it need not match the bytes)."""
    import numpy as np
    from tensorflow import make_tensor_proto

    request = predict_request([], signature_name="pixels")
    del request.inputs["input"]
    images = make_tensor_proto(np.zeros([count, PIXELS_HEIGHT, width, 1], np.float32))
    if declared_width is not None:
        images.tensor_shape.dim[2].size = declared_width
    request.inputs["images"].CopyFrom(images)
    request.inputs["widths"].CopyFrom(make_tensor_proto(np.full([count], width, np.int32)))
    return request


def pixel_attacks(use_grpc: bool) -> list[Attack]:
    """The `pixels` signature: the widest image a request can carry, the most of the widest the server takes, and
    tensors that do not hold what they declare or hold too many images."""
    wide = (MAX_REQUEST_BYTES - 4096) // (4 * PIXELS_HEIGHT)  # as float32 tensor_content
    widest = MAX_IMAGE_MODEL_PIXELS // PIXELS_HEIGHT
    most = (MAX_REQUEST_BYTES - 4096) // (4 * PIXELS_HEIGHT * widest)
    attacks = [rest_attack(f"pixels: 1 image {PIXELS_HEIGHT}x{PIXELS_JSON_WIDTH:,} in JSON",
                           lambda: pixels_json(1, PIXELS_JSON_WIDTH))]
    if use_grpc:
        attacks += [
            grpc_attack(f"gRPC pixels: 1 image {PIXELS_HEIGHT}x{wide:,}", lambda t: pixels_request(1, wide)),
            grpc_attack(f"gRPC pixels: {most} images {PIXELS_HEIGHT}x{widest:,} (the widest taken)",
                        lambda t: pixels_request(most, widest), ("OK",)),
            grpc_attack("gRPC pixels: width 10^9 declared, 4 sent", lambda t: pixels_request(1, 1, 10**9)),
            grpc_attack(f"gRPC pixels: {TINY_GIFS:,} images {PIXELS_HEIGHT}x4", lambda t: pixels_request(TINY_GIFS, 4),
                        ("RESOURCE_EXHAUSTED",)),
        ]
    return attacks


def late_attacks() -> list[Attack]:
    """Connections that hold the server, a flood of 404s, then images that are large but allowed (they may leave
    the server's resident memory higher, so they come last)."""
    def at_limit() -> bytes:  # a complete, valid 1-bit PNG of a few KB
        return hostile_images.png_bomb(*AT_LIMIT)

    side = AT_LIMIT[0]

    return [
        Attack(f"{IDLE_CONNECTIONS} idle connections, then a good request", "rest", idle_connections,
               frozenset({"200"})),
        Attack(f"404 flood: {FLOOD_REQUESTS} GETs of {FLOOD_PATH_CHARS // 1000} KB paths", "rest", not_found_flood,
               frozenset({"404"})),
        image_attack(f"png {side}x{side}, valid (at the pixel limit)", at_limit, ("200",)),
        rest_attack(f"2 png {side}x{side} in one request (twice the limit)",
                    lambda: predict_body(at_limit(), at_limit()), ("429",)),
    ]


def attacks(use_grpc: bool) -> list[Attack]:
    return [*payload_attacks(), *image_attacks(), *count_attacks(), *(grpc_attacks() if use_grpc else []),
            *pixel_attacks(use_grpc), *late_attacks()]


def answer_text(outcomes: list[Outcome]) -> str:
    """The codes of an attack's answers ("x N" where N were alike), and the first words of the first error."""
    counts = Counter(outcome.code for outcome in outcomes)
    codes = ", ".join(code if count == 1 else f"{code} x{count}" for code, count in counts.items())
    message = next((outcome.message for outcome in outcomes if outcome.message), "")
    words = " ".join(message.split()[:12])[:160]
    return f"{codes}: {words}" if words else codes


def run_attack(target: Target, attack: Attack) -> dict:
    """Send one attack; its row: the answers, seconds, the server's VmHWM during it, the good image after it."""
    reset = reset_peak(target.pid)
    seen = len(target.stderr)
    started = time.perf_counter()
    try:
        outcomes = attack.send(target)
    except Exception as e:  # noqa: BLE001 - a request the suite could not make is an outcome too
        outcomes = [Outcome(f"error {type(e).__name__}", str(e))]
    seconds = time.perf_counter() - started
    alive = target.process.poll() is None
    peak, rss = (memory_mib(target.pid, "VmHWM"), memory_mib(target.pid, "VmRSS")) if alive else (math.nan, math.nan)
    failed_good = good_after(target, attack.protocol) if alive else ["server gone"]
    time.sleep(0.1)  # the server's last log lines reach the reader thread
    counts = Counter(outcome.code for outcome in outcomes)
    return {
        "attack": attack.name, "protocol": attack.protocol, "answer": answer_text(outcomes), "outcomes": dict(counts),
        "expected": sorted(attack.expected),
        "unexpected": sum(count for code, count in counts.items() if code not in attack.expected),
        "5xx": sum(outcome.five_xx and outcome.code not in attack.expected for outcome in outcomes),
        "hangs": counts["timeout"], "seconds": seconds, "vmhwm_mib": peak, "vmrss_mib": rss, "peak_reset": reset,
        "good_after": not failed_good, "good_after_failures": failed_good, "alive": alive,
        "graph_node_names": sum("{{node" in outcome.message for outcome in outcomes),
        "server_log": [line.strip()[:300] for line in target.stderr[seen:] if PROBLEM.search(line)][:8],
    }


ROW = "{:52} {:72} {:>6} {:>7}  {}"


def print_row(row: dict) -> None:
    good = "yes" if row["good_after"] else "NO (" + ", ".join(row["good_after_failures"]) + ")"
    print(ROW.format(row["attack"][:52], row["answer"][:72], f"{row['seconds']:.1f}", f"{row['vmhwm_mib']:.0f}", good),
          flush=True)


def warm_up(target: Target, use_grpc: bool) -> None:
    """Good requests at once over both APIs, so that the server's thread pools have their size before its threads
    and descriptors are first counted."""
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda _: good_outcome(target, "rest"), range(32)))
    if use_grpc:
        concurrent_rpcs(target, WARM_UP_RPCS)


def reference_answer(target: Target, protocol: str) -> Answer:
    outcome, answer = ask_good(target, protocol)
    if answer is None:
        raise SystemExit(f"the good image was not answered over {protocol}: {outcome}")
    return answer


def attack_server(target: Target, use_grpc: bool) -> dict:
    """The reference answers, a warm-up, every attack in turn, and the server's figures before and after."""
    target.reference["rest"] = reference_answer(target, "rest")
    base = memory_mib(target.pid, "VmHWM")
    if use_grpc:
        target.reference["grpc"] = reference_answer(target, "grpc")
    warm_up(target, use_grpc)
    after_warm_up = memory_mib(target.pid, "VmHWM")
    start = settled(target.pid)
    print(ROW.format("attack", "answer", "s", "VmHWM", "good after"), flush=True)
    rows = []
    for attack in attacks(use_grpc):
        if target.process.poll() is not None:
            rows.append({"attack": attack.name, "answer": "not sent: the server is gone", "alive": False})
            continue
        rows.append(run_attack(target, attack))
        print_row(rows[-1])
    alive = target.process.poll() is None
    end = settled(target.pid) if alive else (0, 0, math.nan)
    final = good_after(target, "both" if use_grpc else "rest") if alive else ["server gone"]
    return {"rows": rows, "vmhwm_after_first_good_mib": base, "vmhwm_after_warm_up_mib": after_warm_up,
            "start": dict(zip(("threads", "fds", "rss_mib"), start, strict=True)),
            "end": dict(zip(("threads", "fds", "rss_mib"), end, strict=True)),
            "good_at_the_end": not final, "reference": target.reference, **target.figures}


def stop(process: subprocess.Popen) -> int | None:
    """SIGTERM, then the exit status (None where it had to be killed after 60 s)."""
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        return None


def notable_lines(lines: list[str]) -> dict[str, int]:
    """The server's warnings, errors and tracebacks, without their time, each with how often it was logged."""
    notable = Counter(re.sub(r"^\d\d:\d\d:\d\d ", "", line.strip())[:300] for line in lines if NOTABLE.search(line))
    return dict(notable.most_common(30))


def serve_and_attack(export_dir: Path, work: Path, use_grpc: bool) -> dict:
    """Start `aocr serve` on the export (its log in work/aocr.log), attack it, stop it."""
    log_path = work / "aocr.log"
    stderr = Lines()
    grpc_port = free_port() if use_grpc else 0
    process, url = start_server(export_dir, grpc_port, ["--log-path", str(log_path)], log=stderr)
    target = Target(process, url, log_path, stderr, hostile_images.encode(hostile_images.text_image(), "PNG"))
    channel = None
    try:
        if use_grpc:
            target.stub, channel = grpc_stub(f"127.0.0.1:{grpc_port}")
        figures = attack_server(target, use_grpc)
    finally:
        if channel is not None:
            channel.close()
        exit_status = stop(process)
    time.sleep(0.5)  # the reader thread takes the last lines
    figures["server_exit_status"] = exit_status
    figures["tracebacks"] = sum("Traceback" in line for line in stderr)
    figures["server_log_warnings"] = notable_lines(stderr)
    return figures


def checks_of(figures: dict) -> dict[str, bool]:
    """The issue's targets, each True where it holds (the figures gain the totals they are read from)."""
    rows = [row for row in figures["rows"] if "seconds" in row]
    base = figures["vmhwm_after_first_good_mib"]
    peaks = [row["vmhwm_mib"] for row in rows if not math.isnan(row["vmhwm_mib"])]
    totals = {"worst_vmhwm_above_first_good_mib": max(peaks, default=base) - base,
              "5xx": sum(row["5xx"] for row in rows), "unexpected_answers": sum(row["unexpected"] for row in rows),
              "good_failures": sum(not row["good_after"] for row in rows) + (not figures["good_at_the_end"]),
              "hangs": sum(row["hangs"] for row in rows),
              "answers_naming_graph_nodes": sum(row["graph_node_names"] for row in rows)}
    figures.update(totals)
    start, end = figures["start"], figures["end"]
    per_404 = figures.get("log_bytes_per_404", math.inf)
    return {
        f"worst VmHWM within {PEAK_BUDGET_MIB:.0f} MiB of after the first good request":
            totals["worst_vmhwm_above_first_good_mib"] <= PEAK_BUDGET_MIB,
        "no 5xx": totals["5xx"] == 0,
        "the good image answered right after every attack": totals["good_failures"] == 0,
        "every answer one the attack expects": totals["unexpected_answers"] == 0,
        "no hang": totals["hangs"] == 0,
        "every attack sent, the server alive after each": len(rows) == len(figures["rows"])
            and all(row["alive"] for row in rows),
        "no traceback in the server's log": figures["tracebacks"] == 0,
        "threads: no leak": end["threads"] <= start["threads"],
        "file descriptors: no leak": end["fds"] <= start["fds"],
        f"aocr.log: at most {LOG_BYTES_PER_404} bytes per 404": per_404 <= LOG_BYTES_PER_404,
        "exits 0 on SIGTERM": figures["server_exit_status"] == 0,
    }


def summary_line(figures: dict) -> str:
    start, end = figures["start"], figures["end"]
    return (f"worst VmHWM {figures['worst_vmhwm_above_first_good_mib']:+.0f} MiB over "
            f"{figures['vmhwm_after_first_good_mib']:.0f} MiB after the first good request (target <= "
            f"{PEAK_BUDGET_MIB:.0f}); 5xx: {figures['5xx']} (target 0); good-image failures: "
            f"{figures['good_failures']} (target 0); unexpected answers: {figures['unexpected_answers']}; hangs: "
            f"{figures['hangs']}; tracebacks: {figures['tracebacks']}; answers naming graph nodes: "
            f"{figures['answers_naming_graph_nodes']}; threads {start['threads']} -> {end['threads']}, fds "
            f"{start['fds']} -> {end['fds']}; aocr.log {figures.get('log_bytes_per_404', math.nan):.0f} bytes per 404; "
            f"a good request among {IDLE_CONNECTIONS} idle connections waited "
            f"{figures.get('idle_good_request_s', math.nan):.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=None, help="a trained model dir (default: train a tiny one)")
    parser.add_argument("--no-grpc", action="store_true", help="REST only")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    use_grpc = not args.no_grpc and grpc_available()
    with tempfile.TemporaryDirectory(prefix="aocr-hostile-") as temp:
        work = Path(temp)
        print("training a tiny model..." if not args.model_dir else "exporting...", flush=True)
        model = Path(args.model_dir) if args.model_dir else tiny_model(work)
        export_dir = export_model(model, work / "export")
        print(f"serving it, REST{' and gRPC' if use_grpc else ''}; the attacks:", flush=True)
        figures = serve_and_attack(export_dir, work, use_grpc)
    checks = checks_of(figures)
    figures.update(checks=checks, grpc=use_grpc, seconds=time.perf_counter() - started, machine=machine())
    print()
    print(summary_line(figures))
    print()
    print_table([("check", "holds", "")] + [(name, "yes" if held else "NO", "") for name, held in checks.items()])
    print(f"\n{figures['seconds']:.0f} s in all; wrote {write_json('hostile_server.json', figures)}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
