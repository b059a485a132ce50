"""Shared by the benchmark scripts: generated data, machine facts, result tables."""

from __future__ import annotations

import base64
import http.client
import json
import os
import platform
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out"
PREDICT_PATH = "/v1/models/aocr:predict"

# The setup the figures for the original aocr were measured with.
SHAPE = {"max_width": 200, "max_height": 48, "max_prediction": 8}
SHAPE_FLAGS = ["--max-width", "200", "--max-height", "48", "--max-prediction", "8"]
# A model small enough to train in seconds, for figures about memory and robustness, not accuracy.
TINY_FLAGS = ["--max-width", "120", "--max-height", "32", "--max-prediction", "4", "--attn-num-hidden", "32",
              "--attn-num-layers", "1"]


def machine() -> dict:
    """CPU model, core count and the vector extensions that matter to TensorFlow's kernels."""
    model, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16"]
    import tensorflow as tf

    return {"cpu": model, "cores": os.cpu_count(), "flags": [f for f in wanted if f in flags],
            "tensorflow": tf.__version__, "python": sys.version.split()[0]}


def rendered_set(name: str, count: int, seed: int) -> tuple[Path, Path]:
    """(annotations, tfrecords) of `count` rendered 3-8 character strings in several fonts with slight
    rotation, blur and noise; made once and kept under benchmarks/out."""
    from aocr.data.synthetic import make_dataset

    directory = OUT / name
    annotations = directory / "annotations.txt"
    tfrecords = directory / "data.tfrecords"
    if not tfrecords.exists():
        make_dataset(directory, count, seed=seed, min_length=3, max_length=8)
        subprocess.run([sys.executable, "-m", "aocr", "dataset", str(annotations), str(tfrecords),
                        "--log-path", ""], check=True)
    return annotations, tfrecords


# The 10-minute model of benchmarks/learning.py that the inference benchmarks read with.
LEARNED_MODEL = OUT / "learning" / "rendered-b65"


def rendered_test_images() -> tuple[list[str], list[bytes]]:
    """The labels (as the default charset reads them, upper-cased) and the bytes of the 500 rendered test images."""
    from aocr.data.annotations import parse_annotations

    annotations, _ = rendered_set("rendered-test-500", 500, seed=12)
    rows, _, _ = parse_annotations(str(annotations))
    return [row.label.upper() for row in rows], [Path(row.path).read_bytes() for row in rows]


def timed_stream(recognizer, images: list[bytes]) -> tuple[float, list]:
    """(ms/image, results) of one reading of `images` as `aocr predict` reads a stream: the Recognizer
    (aocr.inference.recognizer) in batches of the default size, similar widths together."""
    from aocr.core import defaults

    start = time.perf_counter()
    results = recognizer.recognize(images, defaults.BATCH_SIZE)
    return 1000 * (time.perf_counter() - start) / len(images), results


def captcha_set(name: str, count: int, seed: int) -> tuple[Path, Path]:
    """(annotations, tfrecords) of `count` distorted captcha-style images (160x60, 4-6 digits and capitals,
    noise dots, a curve, warped glyphs), drawn by the `captcha` package; made once under benchmarks/out."""
    import random

    from captcha.image import ImageCaptcha

    directory = OUT / name
    annotations = directory / "annotations.txt"
    tfrecords = directory / "data.tfrecords"
    if not tfrecords.exists():
        (directory / "images").mkdir(parents=True, exist_ok=True)
        random.seed(seed)  # the captcha package draws with the module-level generator
        drawer = ImageCaptcha(width=160, height=60)
        alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        lines = []
        for number in range(count):
            text = "".join(random.choice(alphabet) for _ in range(random.randint(4, 6)))
            path = directory / "images" / f"{number:05d}.png"
            drawer.generate_image(text).save(path)
            lines.append(f"{path} {text}\n")
        annotations.write_text("".join(lines), encoding="utf-8")
        subprocess.run([sys.executable, "-m", "aocr", "dataset", str(annotations), str(tfrecords),
                        "--log-path", ""], check=True)
    return annotations, tfrecords


def write_json(name: str, results: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def aocr(*args: str) -> list[str]:
    """The command line of an aocr verb, run by this Python."""
    return [sys.executable, "-m", "aocr", *args]


def tiny_model(work: Path, steps: int = 2) -> Path:
    """A model with TINY_FLAGS trained for `steps` steps on 32 plain images of 1-4 digits (work/model)."""
    import random

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tools import hostile_images

    draw = random.Random(4)
    rows = []
    for number in range(32):
        text = "".join(draw.choice("0123456789") for _ in range(draw.randint(1, 4)))
        path = work / f"plain-{number}.png"
        path.write_bytes(hostile_images.encode(hostile_images.text_image(text=text), "PNG"))
        rows.append(f"{path} {text}\n")
    (work / "plain.txt").write_text("".join(rows))
    subprocess.run(aocr("dataset", str(work / "plain.txt"), str(work / "plain.tfrecords"), "--log-path", ""),
                   check=True, capture_output=True)
    model = work / "model"
    subprocess.run(aocr("train", str(work / "plain.tfrecords"), "--model-dir", str(model), *TINY_FLAGS,
                        "--batch-size", "4", "--max-steps", str(steps), "--validation-split", "0", "--log-path", ""),
                   check=True, capture_output=True)
    return model


def export_model(model_dir: Path | str, export_dir: Path) -> Path:
    """`aocr export` of a model dir's latest checkpoint into export_dir (version 1); returns export_dir."""
    subprocess.run(aocr("export", str(export_dir), "--model-dir", str(model_dir), "--log-path", ""), check=True,
                   capture_output=True)
    return export_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(export_dir: Path, grpc_port: int, flags: list[str],
                 log: IO[str] | None = None) -> tuple[subprocess.Popen, str]:
    """`aocr serve` on a free REST port; returns the process and its REST URL once it listens. Its log
    (one line per request) is read to the end by a thread, and copied into `log` where one is given."""
    process = subprocess.Popen(aocr("serve", str(export_dir), "--port", "0", "--grpc-port", str(grpc_port),
                                    "--log-path", "", *flags),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def drain() -> None:  # a full pipe would stall the server
        for line in process.stderr:
            if log is not None:
                log.write(line)

    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        lines.append(line)
        match = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        if match:
            threading.Thread(target=drain, daemon=True).start()
            return process, match.group(1)
        if not line and process.poll() is not None:
            break
    process.kill()
    raise SystemExit("aocr serve did not start:\n" + "".join(lines[-20:]))


def predict_body(*images: bytes, signature_name: str = "") -> bytes:
    """A TF Serving :predict body in the row format: one {"b64": ...} instance per image (and the signature's
    name where one is given)."""
    doc: dict = {"signature_name": signature_name} if signature_name else {}
    doc["instances"] = [{"b64": base64.b64encode(image).decode()} for image in images]
    return json.dumps(doc).encode()


def rest_answer(answer: bytes) -> tuple[list[str], list[float]]:
    """(texts, probabilities) of a row-format answer of serving_default."""
    rows = json.loads(answer)["predictions"]
    return [row["output"] for row in rows], [row["probability"] for row in rows]


def post(url: str, body: bytes, path: str = PREDICT_PATH, timeout: float = 60,
         method: str = "POST") -> tuple[int, bytes, str]:
    """POST body on a new connection; (status, answer, note). Where the server answers (413) and closes
    before taking the whole body, the answer is read after the send fails, and the note says so."""
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=timeout)
    note = ""
    try:
        try:
            connection.request(method, path, body, {"Content-Type": "application/json"})
        except (BrokenPipeError, ConnectionResetError) as e:
            note = f"answer read after {type(e).__name__} while sending"
        response = connection.getresponse()
        return response.status, response.read(), note
    finally:
        connection.close()


def disconnect(host: str, port: int, variant: int, good_body: bytes, timeout: float = 60) -> str:
    """A client that announces a body, sends part of it (or none) and closes (variant 3: with a reset); returns
    what it did."""
    declared, sent = [(len(good_body), 0), (len(good_body), len(good_body) // 2),
                      (3_000_000, 1_000_000), (3_000_000, 700_000)][variant % 4]
    body = (good_body + b" " * declared)[:sent]
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(f"POST {PREDICT_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {declared}\r\n\r\n".encode() + body)
        if variant % 4 == 3:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
    return ["headers only", "half the body", "1 MB of 3 MB", "700 KB of 3 MB, then RST"][variant % 4]


def grpc_available() -> bool:
    """Whether grpcio and tensorflow-serving-api, which the gRPC clients use, are installed."""
    try:
        import grpc  # noqa: F401
        from tensorflow_serving.apis import prediction_service_pb2_grpc  # noqa: F401
    except ImportError:
        return False
    return True


def grpc_stub(address: str) -> tuple[Any, Any]:
    """(PredictionServiceStub, channel) of tensorflow-serving-api for a server at host:port; the channel sends
    messages of any size (the server's own limit is what a benchmark tries)."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", -1)])
    return prediction_service_pb2_grpc.PredictionServiceStub(channel), channel


def predict_request(images: list[bytes], signature_name: str = "", shape: list[int] | None = None) -> Any:
    """A PredictRequest for model "aocr": its DT_STRING input tensor holds `images` and declares the shape
    [len(images)], or `shape` where one is given (it need not match the values)."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "aocr"
    if signature_name:
        request.model_spec.signature_name = signature_name
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=n) for n in ([len(images)] if shape is None else shape)]
    request.inputs["input"].CopyFrom(tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims), string_val=images))
    return request


def grpc_answer(response: Any) -> tuple[list[str], list[float]]:
    """(texts, probabilities) of a serving_default PredictResponse."""
    from tensorflow import make_ndarray

    texts, probabilities = (make_ndarray(response.outputs[key]) for key in ("output", "probability"))
    return [text.decode("utf-8", "replace") for text in texts], probabilities.tolist()


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as field -> value (Linux)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def memory_mib(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of /proc/PID/status in MiB: VmRSS (resident now) or VmHWM (peak resident)."""
    return int(proc_status(pid)[field].split()[0]) / 1024


def threads_and_fds(pid: int) -> tuple[int, int]:
    """(threads, open file descriptors) of a process (Linux /proc)."""
    return int(proc_status(pid)["Threads"]), len(os.listdir(f"/proc/{pid}/fd"))


def reset_peak(pid: int) -> bool:
    """Set a process's VmHWM back to its VmRSS, so that the next reading is the peak from now on (Linux 4.0+:
    "5" written to /proc/PID/clear_refs); False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def settled(pid: int, seconds: float = 10.0) -> tuple[int, int, float]:
    """(threads, open descriptors, VmRSS MiB) once the counts have stayed the same for half a second (closed
    connections are let go on the server's next loop turn), or after `seconds`."""
    deadline = time.monotonic() + seconds
    last = threads_and_fds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = threads_and_fds(pid)
        if now == last:
            break
        last = now
    return (*last, memory_mib(pid, "VmRSS"))
