"""`aocr serve`: TF Serving's REST API on 127.0.0.1, driven by a real HTTP client."""

import base64
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aocr.core import defaults
from aocr.core.precision import bf16_units_missing
from tests.conftest import example_pixels_client, params_limit, run_aocr
from tools import hostile_images

MAX_REQUEST_BYTES = 200_000


def start_server(export_dir, *flags, cwd, env=None, before="", later_log=None):
    """`aocr serve` on a REST port the OS picks; returns (process, REST url, log lines of the start).
    `before`: Python statements run in the server's process before the command line is read;
    `later_log`: a list that collects the log lines after the start."""
    program = ["-c", f"import sys; {before}; from aocr.cli import main; sys.exit(main())"] if before else ["-m", "aocr"]
    process = subprocess.Popen(
        [sys.executable, *program, "serve", str(export_dir), "--port", "0", *flags],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url, lines = None, []
    deadline = time.monotonic() + 120
    while url is None and time.monotonic() < deadline:
        line = process.stderr.readline()
        lines.append(line)
        match = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        url = match.group(1) if match else None
        assert line or process.poll() is None, "aocr serve exited before listening:\n" + "".join(lines)
    assert url, "aocr serve did not report its address"
    # Keep reading its log (a line per failed request), or a full pipe would stall the server.
    sink = later_log if later_log is not None else []
    threading.Thread(target=sink.extend, args=(process.stderr,), daemon=True).start()
    return process, url, lines


def stop_server(process):
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert process.returncode == 0


@pytest.fixture(scope="module")
def exported(trained_model, tmp_path_factory):
    """The trained model exported as version 1, and a copy of it as version 2."""
    directory = tmp_path_factory.mktemp("served")
    result = run_aocr("export", str(directory / "model"), "--model-dir", str(trained_model), cwd=directory)
    assert result.returncode == 0, result.stderr
    shutil.copytree(directory / "model" / "1", directory / "model" / "2")
    return directory / "model"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def grpc_address():
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def server(exported, grpc_address):
    """`aocr serve` with two versions, labelled stable=1 and canary=2, REST and gRPC, batches of at most
    3 images (so that the 4-image requests are split), in float32 as tensorflow_model_server computes;
    stopped with SIGTERM at the end."""
    process, url, _ = start_server(exported, "--precision", "float32", "--max-request-bytes", str(MAX_REQUEST_BYTES),
                                   "--max-batch-size", "3",
                                   "--version-label", "stable=1", "--version-label", "canary=2",
                                   "--grpc-port", grpc_address.rsplit(":", 1)[1], cwd=exported.parent)
    yield url, process
    stop_server(process)


def call(url, path, body=None, raw=None, method=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url + path, data=data, method=method or ("POST" if data is not None else "GET"),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def b64(path):
    return b64_bytes(path.read_bytes())


def b64_bytes(data):
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def expected(trained_model, digits_set):
    result = run_aocr("predict", *map(str, digits_set.images[:4]), "--model-dir", str(trained_model))
    return [line.split("\t")[1] for line in result.stdout.splitlines()]


def test_the_original_readme_request_works_unchanged(server, digits_set, expected):
    url, _ = server
    body = {"signature_name": "serving_default", "inputs": {"input": {"b64": b64(digits_set.images[0])}},
            "output_filter": ["output"]}
    status, answer = call(url, "/v1/models/aocr:predict", body)
    assert status == 200
    assert answer["outputs"]["output"] == expected[0]
    assert 0.0 <= answer["outputs"]["probability"] <= 1.0


def test_row_and_columnar_batches(server, digits_set, expected):
    url, _ = server
    images = [{"b64": b64(p)} for p in digits_set.images[:4]]
    status, rows = call(url, "/v1/models/aocr/versions/1:predict", {"instances": images})
    assert status == 200
    assert [row["output"] for row in rows["predictions"]] == expected
    status, columns = call(url, "/v1/models/aocr:predict", {"inputs": {"input": images}})
    assert status == 200 and columns["outputs"]["output"] == expected
    assert len(columns["outputs"]["probability"]) == 4


def available(*versions):
    return {"model_version_status": [{"version": str(v), "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}} for v in versions]}


def test_status_and_metadata(server):
    url, _ = server
    assert call(url, "/v1/models/aocr") == (200, available(2, 1))  # every loaded version, newest first
    assert call(url, "/v1/models/aocr/versions/1") == (200, available(1))
    status, metadata = call(url, "/v1/models/aocr/metadata")
    assert status == 200
    assert metadata["model_spec"] == {"name": "aocr", "signature_name": "", "version": "2"}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["input"]["dtype"] == "DT_STRING"
    assert signature["outputs"]["output"]["dtype"] == "DT_STRING"
    assert signature["outputs"]["probability"]["dtype"] == "DT_DOUBLE"
    assert signature["method_name"] == "tensorflow/serving/predict"
    status, metadata = call(url, "/v1/models/aocr/labels/stable/metadata")
    assert status == 200 and metadata["model_spec"]["version"] == "1"


def test_version_labels(server, digits_set, expected):
    url, _ = server
    body = {"instances": [{"b64": b64(digits_set.images[0])}]}
    for label in ("stable", "canary"):
        status, answer = call(url, f"/v1/models/aocr/labels/{label}:predict", body)
        assert status == 200 and answer["predictions"][0]["output"] == expected[0]
    assert call(url, "/v1/models/aocr/labels/beta:predict", body) == (
        400, {"error": "Unrecognized servable version label: beta"})
    assert call(url, "/v1/models/aocr/labels/beta/metadata") == (
        400, {"error": "Unrecognized servable version label: beta"})
    assert call(url, "/v1/models/other/labels/stable:predict", body) == (
        400, {"error": "Unrecognized servable version label: stable"})
    # TF Serving's status ignores the label (GetModelStatusImpl reads the version only).
    assert call(url, "/v1/models/aocr/labels/beta") == (200, available(2, 1))


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/models/aocr:predict"), ("POST", "/v1/models/aocr/metadata"), ("POST", "/v1/models/aocr"),
    ("PUT", "/v1/models/aocr"), ("DELETE", "/v1/models/aocr:predict"), ("GET", "/v1/models/aocr/versions/abc"),
    ("POST", "/v1/models/aocr/versions/abc:predict"), ("POST", "/v1/models/aocr/versions/1/labels/stable:predict"),
    ("POST", "/v1/models/aocr:Predict"), ("GET", "/v1/foo"),
])
def test_what_tf_serving_does_not_route_is_a_malformed_request(server, method, path):
    url, _ = server
    got = call(url, path, raw=b"{}" if method != "GET" else None, method=method)
    assert got == (400, {"error": f"Malformed request: {method} {path}"})


@pytest.mark.parametrize(("method", "path", "status", "error"), [
    ("GET", "/v1/models", 400, "Missing model name in request."),
    ("GET", "/v1/models/metadata", 404, "Could not find any versions of model metadata"),
    ("GET", "/v1/models/aocr/versions/9", 404, "Could not find version 9 of model aocr"),
    ("GET", "/v1/models/other", 404, "Could not find any versions of model other"),
    ("GET", "/v1/models/other/metadata", 404, "Servable not found for request: Latest(other)"),
    ("GET", "/v1/models/aocr/versions/9/metadata", 404, "Servable not found for request: Specific(aocr, 9)"),
    ("POST", "/v1/models/aocr/versions/99999999999999999999:predict", 400,
     "Failed to convert version: 99999999999999999999 to numeric."),
    ("POST", "/v1/models/aocr:predict", 400, "JSON Parse error: The document is empty"),
    ("POST", "/v1/models/other:predict", 400, "JSON Parse error: The document is empty"),  # the body comes first
])
def test_routed_requests_get_tf_servings_status_and_text(server, method, path, status, error):
    url, _ = server
    assert call(url, path, raw=b"" if method == "POST" else None, method=method) == (status, {"error": error})


def test_paths_outside_v1_are_not_found(server):
    url, _ = server
    status, _ = call(url, "/v2/models/aocr")
    assert status == 404


def pixels_body(widths=(4,), value=0, height=32):
    """A `pixels` request for one image, 4 columns wide, of one value."""
    images = [[[[value]] * 4] * height]
    return json.dumps({"signature_name": "pixels", "inputs": {"images": images, "widths": list(widths)}}).encode()


PLAIN_TEXT = base64.b64encode(b"plain text").decode()
TRUNCATED_PNG = base64.b64encode(hostile_images.encode(hostile_images.text_image(), "PNG")[:80]).decode()


@pytest.mark.parametrize(("path", "raw", "status", "error"), [
    ("/v1/models/aocr:predict", b"{not json", 400, "JSON Parse error: "),
    ("/v1/models/aocr:predict", b"[1]", 400, "JSON Value: [1] Is not object"),
    ("/v1/models/aocr:predict", b'{"signature_name": 5}', 400, "'signature_name' key must be a string value."),
    ("/v1/models/aocr:predict", b'{"instances": [{"b64": "AAAA"}]}', 400, "Unknown image file format"),
    ("/v1/models/aocr:predict", b'{"inputs": {"image": {"b64": "AAAA"}}}', 400,
     "Missing named input: input in 'inputs' object."),
    ("/v1/models/aocr:predict", b'{"instances": [{"b64": "***"}]}', 400,
     "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: Unable to base64 decode"),
    ("/v1/models/aocr:predict", b'{"instances": [5]}', 400,
     "Error: INVALID_ARGUMENT: JSON Value: 5 Type: Number is not of expected type: string"),
    ("/v1/models/aocr:predict", b'{"instances": [{"image": {"b64": "AAAA"}}]}', 400,
     "Failed to process element: 0 key: image of 'instances' list. Error: INVALID_ARGUMENT: JSON object: does "
     "not have named input: image"),
    ("/v1/models/aocr:predict", b'{"inputs": [[{"b64": "AAAA"}], []]}', 400,
     "Encountered list at unexpected size: 0 at level: 1 expected size: 1"),
    ("/v1/models/aocr:predict", f'{{"instances": [{{"b64": "{PLAIN_TEXT}"}}]}}'.encode(), 400,
     "Unknown image file format"),
    ("/v1/models/aocr:predict", b'{"instances": []}', 400, "No values in 'instances' array"),
    ("/v1/models/aocr:predict", f'{{"instances": [{{"b64": "{TRUNCATED_PNG}"}}]}}'.encode(), 400,
     "Invalid PNG data"),
    ("/v1/models/aocr:predict", b'{"instances": [], "inputs": []}', 400,
     "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist"),
    ("/v1/models/aocr:predict", b'{"examples": []}', 400, "Missing 'inputs' or 'instances' key"),
    ("/v1/models/aocr:predict", b'{"signature_name": "other", "instances": []}', 400,
     'Serving signature name: "other" not found in signature def'),
    ("/v1/models/aocr:predict", b'{"signature_name": "pixels", "instances": [{"images": [[[0]]], "widths": 4}]}',
     400, "tensor images: its shape [1,1,1,1] does not fit the signature's [-1,32,-1,1]"),
    ("/v1/models/aocr:predict", pixels_body(widths=[9]), 400, "widths[0] is 9: each image's width is from 1 to"),
    ("/v1/models/aocr:predict", pixels_body(widths=[1, 2]), 400, "tensor widths: its shape [2] should be [1]"),
    ("/v1/models/aocr:predict", pixels_body(value=float("nan")), 400, "JSON Value: NaN is out of range for float"),
    ("/v1/models/aocr:predict", pixels_body(value="x"), 400, 'JSON Value: "x" Type: String is not of expected type: '
     "float"),
    ("/v1/models/aocr:predict", pixels_body(widths=[1.5]), 400, "JSON Value: 1.5 Type: Number is not of expected "
     "type: int32"),
    ("/v1/models/aocr:predict", pixels_body(widths=[2 ** 40]), 400, "is out of range for int32"),
    ("/v1/models/aocr:predict", pixels_body(value=True), 400, "Type: True is not of expected type: float"),
    ("/v1/models/aocr:predict", pixels_body(value=10 ** 400), 400, "is out of range for float"),
    ("/v1/models/other:predict", b'{"instances": []}', 404, "Servable not found for request: Latest(other)"),
    ("/v1/models/aocr/versions/9:predict", b'{"instances": []}', 404,
     "Servable not found for request: Specific(aocr, 9)"),
    ("/v1/models/aocr:classify", b'{"examples": []}', 400,
     "Expected classification signature method_name to be tensorflow/serving/classify"),
    ("/v1/models/aocr:predict", b'{"instances": [{"b64": "' + b"A" * MAX_REQUEST_BYTES + b'"}]}', 413, "limit"),
    ("/v1/models/aocr:predict", b'{"instances": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400, "nested too deeply"),
    ("/v1/models/aocr:predict", b'{"instances": [' + b"7" * 5000 + b"]}", 400, "JSON Parse error"),
    ("/v1/models/aocr:predict", b'{"inputs": ' + b"[" * 100 + b'"x"' + b"]" * 100 + b"}", 400,
     "nested 100 lists deep"),
])
def test_bad_requests_get_tf_servings_errors_and_the_server_keeps_serving(server, digits_set, expected, path,
                                                                          raw, status, error):
    url, _ = server
    got, answer = call(url, path, raw=raw)
    assert (got, error) == (status, error) and error in answer["error"]
    assert "{{node" not in answer["error"] and "File " not in answer["error"]  # the server's words, not the graph's
    good, answer = call(url, "/v1/models/aocr:predict", {"instances": [{"b64": b64(digits_set.images[0])}]})
    assert good == 200 and answer["predictions"][0]["output"] == expected[0]


def test_concurrent_clients_each_get_their_own_answer_and_a_bad_one_fails_alone(server, digits_set, expected):
    """Eight clients with different images, run together in batches; a ninth sends bytes that are not an image."""
    url, _ = server
    bodies = [{"instances": [{"b64": b64(digits_set.images[i])}]} for i in range(4)]
    bad = {"instances": [{"b64": base64.b64encode(b"not an image").decode()}]}

    def client(number):
        if number == 8:
            return [("bad", call(url, "/v1/models/aocr:predict", bad)) for _ in range(10)]
        return [(number % 4, call(url, "/v1/models/aocr:predict", bodies[number % 4])) for _ in range(10)]

    with ThreadPoolExecutor(9) as pool:
        answers = [a for batch in pool.map(client, range(9)) for a in batch]
    assert len(answers) == 90
    for image, (status, answer) in answers:
        if image == "bad":
            assert status == 400 and "Unknown image file format" in answer["error"]
        else:
            assert status == 200 and answer["predictions"][0]["output"] == expected[image]


def test_as_many_concurrent_clients_as_max_batch_size_fill_one_batch(exported, digits_set, expected):
    """Each waiting request holds a server thread: there must be enough of them for --max-batch-size
    clients to be in one batch (-v logs each batch). With a 20 s batch timeout none is cut short by it."""
    later_log = []
    process, url, _ = start_server(exported, "-v", "--max-batch-size", "24", "--batch-timeout-micros", "20000000",
                                   "--grpc-port", "0", cwd=exported.parent, later_log=later_log)
    try:
        body = {"instances": [{"b64": b64(digits_set.images[0])}]}
        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(lambda _: call(url, "/v1/models/aocr:predict", body), range(24)))
    finally:
        stop_server(process)
    assert all(status == 200 and answer["predictions"][0]["output"] == expected[0] for status, answer in answers)
    deadline = time.monotonic() + 10  # the reader thread may still be copying the log
    while not any("24 images from 24 requests" in line for line in later_log) and time.monotonic() < deadline:
        time.sleep(0.05)
    batches = [line for line in later_log if "images from" in line]
    assert any("24 images from 24 requests" in line for line in batches), batches


@pytest.mark.skipif(bf16_units_missing() is not None, reason="needs usable bfloat16 units (AMX or AVX-512 BF16, "
                    "ONEDNN_MAX_CPU_ISA not below them): elsewhere the server runs float32 and says so")
def test_precision_bfloat16_reads_the_same_texts_with_its_own_arithmetic(server, exported, digits_set):
    """--precision bfloat16 runs the float32 export in bfloat16: the same texts as the float32 server, the
    probabilities close to its but not all equal (equal ones would mean the flag was ignored)."""
    body = {"instances": [{"b64": b64(p)} for p in digits_set.images[:12]]}
    float32_url, _ = server
    status, float32_answer = call(float32_url, "/v1/models/aocr:predict", body)
    assert status == 200
    process, url, lines = start_server(exported, "--precision", "bfloat16", "--max-batch-size", "3", "--grpc-port", "0",
                                       cwd=exported.parent)
    try:
        status, bfloat16_answer = call(url, "/v1/models/aocr:predict", body)
    finally:
        stop_server(process)
    assert status == 200 and "in bfloat16" in lines[-1]
    float32_rows, bfloat16_rows = float32_answer["predictions"], bfloat16_answer["predictions"]
    assert [row["output"] for row in bfloat16_rows] == [row["output"] for row in float32_rows]
    differences = [abs(a["probability"] - b["probability"]) for a, b in zip(float32_rows, bfloat16_rows, strict=True)]
    assert max(differences) < 0.05
    assert max(differences) > 1e-7


def test_precision_bfloat16_without_bfloat16_units_says_it_serves_float32(server, exported, digits_set):
    """Where oneDNN has no bfloat16 units (here: limited to AVX2), TensorFlow would leave the graph float32:
    the server says so and answers exactly as the float32 server, instead of claiming bfloat16."""
    body = {"instances": [{"b64": b64(p)} for p in digits_set.images[:4]]}
    status, float32_answer = call(server[0], "/v1/models/aocr:predict", body)
    assert status == 200
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    process, url, lines = start_server(exported, "--precision", "bfloat16", "--max-batch-size", "3", "--grpc-port", "0",
                                       cwd=exported.parent, env=env)
    try:
        status, answer = call(url, "/v1/models/aocr:predict", body)
    finally:
        stop_server(process)
    log = "".join(lines)
    assert status == 200 and "serving in float32" in log and "in float32" in lines[-1]
    rows, float32_rows = answer["predictions"], float32_answer["predictions"]
    assert [row["output"] for row in rows] == [row["output"] for row in float32_rows]
    # float32 both, up to the last bits that AVX2's kernels may round otherwise than this CPU's own
    assert max(abs(a["probability"] - b["probability"]) for a, b in zip(rows, float32_rows, strict=True)) < 1e-5


def test_serve_without_an_export_is_a_clear_error(tmp_path):
    result = run_aocr("serve", str(tmp_path / "nothing"), "--port", "0", cwd=tmp_path)
    assert result.returncode != 0 and "aocr export" in result.stderr and "Traceback" not in result.stderr


def test_sigterm_answers_the_requests_in_flight_then_exits(exported, digits_set, expected):
    later_log = []
    process, url, _ = start_server(exported, "--version", "1", "--grpc-port", "0", cwd=exported.parent,
                                   later_log=later_log)
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"instances": [{"b64": b64(digits_set.images[1])}] * 16})
    connections = []
    try:
        for _ in range(6):
            connection = http.client.HTTPConnection(host, int(port), timeout=120)
            connection.request("POST", "/v1/models/aocr:predict", body, {"Content-Type": "application/json"})
            connections.append(connection)
        time.sleep(1.0)  # the server has accepted them all; most are still queued behind each other
        process.send_signal(signal.SIGTERM)
        answers = []
        for connection in connections:
            response = connection.getresponse()
            answers.append((response.status, json.loads(response.read())))
    finally:
        for connection in connections:
            connection.close()
        process.wait(timeout=60)
    assert process.returncode == 0
    assert [status for status, _ in answers] == [200] * 6
    assert all(row["output"] == expected[1] for _, answer in answers for row in answer["predictions"])
    time.sleep(0.5)  # the log reader's last lines
    assert any(re.search(r"last \d+ s: 6 requests .*, 0 failed; latency p50", line) for line in later_log), later_log


def test_a_second_sigterm_stops_the_server_at_once_while_a_request_still_runs(exported, digits_set, tmp_path):
    """A request whose model run takes a minute (the run is slowed down in the server's process) holds the
    drain after a first SIGTERM; a second one ends the server at once with the status of a forced stop."""
    started = tmp_path / "run-started"
    slow_run = ("import pathlib, time, aocr.serving.servables as s; predict = s.Version.predict; "
                f"s.Version.predict = lambda self, *a, **k: (pathlib.Path({str(started)!r}).touch(), time.sleep(60), "
                "predict(self, *a, **k))[2]")
    later_log = []
    process, url, _ = start_server(exported, "--grpc-port", "0", "--no-enable-batching", cwd=exported.parent,
                                   before=slow_run, later_log=later_log)
    body = {"instances": [{"b64": b64(digits_set.images[0])}]}

    def ask() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):  # the server is stopped under it
            call(url, "/v1/models/aocr:predict", body)

    client = threading.Thread(target=ask, daemon=True)
    client.start()
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the request never reached the model"
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while not any("answering the requests in flight" in line for line in later_log):
            assert time.monotonic() < deadline and process.poll() is None, later_log
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM
    assert any("SIGTERM received again: stopping at once" in line for line in later_log), later_log


def test_version_label_mistakes_are_clear_errors(exported):
    for label, words in (("stable", "LABEL=VERSION"), ("stable=7", "no version 7"), ("1=1", "LABEL=VERSION")):
        result = run_aocr("serve", str(exported), "--port", "0", "--version-label", label, cwd=exported.parent)
        assert result.returncode != 0 and words in result.stderr and "Traceback" not in result.stderr


def test_serve_imports_no_model_export_or_font_code():
    code = ("import sys, aocr.cli, aocr.cli.serve; print(sorted(m for m in sys.modules if m.startswith(("
            "'aocr.export', 'aocr.model', 'aocr.data', 'aocr.training', 'aocr.inference', 'PIL.ImageFont'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def grpc_stubs(address):
    """tensorflow-serving-api's own client stubs, as a tensorflow_model_server client uses them."""
    pytest.importorskip("tensorflow_serving.apis")
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(address)
    return prediction_service_pb2_grpc.PredictionServiceStub(channel), model_service_pb2_grpc.ModelServiceStub(channel)


def grpc_predict(stub, images=None, name="aocr", version=None, label=None, signature="", inputs=None):
    """A Predict RPC: the encoded `images` as the one input, or the named `inputs` (arrays) as they are."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for key, value in (inputs or {"input": images}).items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    response = stub.Predict(request, timeout=60)
    return {key: tf.make_ndarray(value) for key, value in response.outputs.items()}, response.model_spec


class _HeldStatus:
    """A servable whose GetModelStatus answers once `release` is set, so the RPCs it holds fill the threads."""

    name = "aocr"

    def __init__(self):
        self.release = threading.Event()

    def status(self, name, version):
        assert self.release.wait(60)
        return [1]


def test_grpc_refuses_at_once_the_rpcs_beyond_its_threads_and_as_many_waiting():
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2

    from aocr.serving import grpc_api
    from aocr.serving.traffic import Traffic

    servable, port = _HeldStatus(), free_port()
    server = grpc_api.start(servable, "127.0.0.1", port, 1 << 20, 2, 30.0, Traffic())
    try:
        _, models = grpc_stubs(f"127.0.0.1:{port}")
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "aocr"
        calls = [models.GetModelStatus.future(request, timeout=60) for _ in range(8)]
        deadline = time.monotonic() + 30
        while not any(call.done() for call in calls) and time.monotonic() < deadline:
            time.sleep(0.01)
        refused = [call for call in calls if call.done()]
        assert refused and all(call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for call in refused)
        servable.release.set()
        codes = [call.code() for call in calls]
        assert codes.count(grpc.StatusCode.OK) == 4 and codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 4, codes
    finally:
        servable.release.set()
        server.stop(0)


def test_grpc_predict_gives_the_rest_apis_answers(server, grpc_address, digits_set):
    url, _ = server
    prediction, _ = grpc_stubs(grpc_address)
    images = [p.read_bytes() for p in digits_set.images[:3]]
    outputs, spec = grpc_predict(prediction, images)
    status, rest = call(url, "/v1/models/aocr:predict", {"instances": [{"b64": b64(p)} for p in digits_set.images[:3]]})
    assert status == 200
    assert [text.decode() for text in outputs["output"]] == [row["output"] for row in rest["predictions"]]
    assert outputs["probability"].tolist() == pytest.approx([row["probability"] for row in rest["predictions"]])
    assert (spec.name, spec.version.value, spec.signature_name) == ("aocr", 2, "serving_default")
    outputs, spec = grpc_predict(prediction, images[0], label="stable")  # a scalar, and a label
    assert outputs["output"].shape == () and outputs["output"].item().decode() == rest["predictions"][0]["output"]
    assert spec.version.value == 1


def test_grpc_errors_have_tf_servings_codes_and_the_server_keeps_serving(server, grpc_address, digits_set):
    import grpc

    prediction, _ = grpc_stubs(grpc_address)
    image = digits_set.images[0].read_bytes()
    for kwargs, code, text in [
        ({"images": [b"plain text"]}, grpc.StatusCode.INVALID_ARGUMENT, "Unknown image file format"),
        ({"images": [image, b""]}, grpc.StatusCode.INVALID_ARGUMENT, "Input is empty"),
        ({"images": [image], "name": "other"}, grpc.StatusCode.NOT_FOUND,
         "Servable not found for request: Latest(other)"),
        ({"images": [image], "version": 9}, grpc.StatusCode.NOT_FOUND,
         "Servable not found for request: Specific(aocr, 9)"),
        ({"images": [image], "label": "beta"}, grpc.StatusCode.INVALID_ARGUMENT,
         "Unrecognized servable version label: beta"),
        ({"images": [1.5]}, grpc.StatusCode.INVALID_ARGUMENT, "Expects arg[0] to be string but float is provided"),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            grpc_predict(prediction, **kwargs)
        assert caught.value.code() == code and text in caught.value.details()
    outputs, _ = grpc_predict(prediction, [image])
    assert len(outputs["output"]) == 1


def test_grpc_metadata_and_status(server, grpc_address):
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

    prediction, models = grpc_stubs(grpc_address)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "aocr"
    response = prediction.GetModelMetadata(request, timeout=60)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert response.model_spec.version.value == 2
    assert signatures.signature_def["serving_default"].method_name == "tensorflow/serving/predict"
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "aocr"
    status = models.GetModelStatus(request, timeout=60)
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE), (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]


def without_the_serving_api(tmp_path) -> dict:
    """An environment in which `import tensorflow_serving` fails, as where the grpc extra is not installed."""
    blocker = tmp_path / "tensorflow_serving"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('tensorflow_serving blocked by the test')\n")
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))


def test_a_grpc_port_asked_for_without_the_serving_api_package_is_an_error(exported, tmp_path):
    result = run_aocr("serve", str(exported), "--port", "0", "--grpc-port", str(free_port()), cwd=exported.parent,
                      env={"PYTHONPATH": without_the_serving_api(tmp_path)["PYTHONPATH"]}, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "--grpc-port" in result.stderr and "aocr[grpc]" in result.stderr and "Traceback" not in result.stderr


def test_without_the_serving_api_package_rest_still_serves(exported, digits_set, expected, tmp_path):
    env = without_the_serving_api(tmp_path)
    process, url, lines = start_server(exported, cwd=exported.parent, env=env)
    try:
        assert any("gRPC is off" in line and "aocr[grpc]" in line for line in lines)
        status, answer = call(url, "/v1/models/aocr:predict", {"instances": [{"b64": b64(digits_set.images[0])}]})
        assert status == 200 and answer["predictions"][0]["output"] == expected[0]
    finally:
        stop_server(process)


@pytest.mark.parametrize("make_bomb", [hostile_images.png_bomb, hostile_images.jpeg_bomb, hostile_images.gif_bomb])
def test_an_image_declaring_gigapixels_is_refused_from_its_header(server, digits_set, expected, make_bomb):
    url, _ = server
    bomb = base64.b64encode(make_bomb(10000, 10000)).decode()  # 100 megapixels, in a body under the test's limit
    status, answer = call(url, "/v1/models/aocr:predict", {"instances": [{"b64": bomb}]})
    assert status == 400 and f"over the limit of {defaults.MAX_REQUEST_PIXELS / 1e6:g} megapixels" in answer["error"]
    good, answer = call(url, "/v1/models/aocr:predict", {"instances": [{"b64": b64(digits_set.images[0])}]})
    assert good == 200 and answer["predictions"][0]["output"] == expected[0]


@pytest.mark.parametrize("make_image", [hostile_images.webp_lossless_header, hostile_images.png_with_a_broken_chunk])
def test_an_image_whose_header_gives_no_size_is_not_decoded(server, digits_set, expected, make_image):
    url, _ = server
    status, answer = call(url, "/v1/models/aocr:predict", {"instances": [{"b64": b64_bytes(make_image())}]})
    assert status == 400 and "image 0: " in answer["error"]
    good, answer = call(url, "/v1/models/aocr:predict", {"instances": [{"b64": b64(digits_set.images[0])}]})
    assert good == 200 and answer["predictions"][0]["output"] == expected[0]


def test_a_request_is_bounded_in_images_and_in_pixels(server, digits_set, expected):
    url, _ = server
    tiny = b64_bytes(hostile_images.gif(2, 2))
    for signature in ("serving_default", "n_best"):
        body = {"signature_name": signature, "instances": [{"b64": tiny}] * (defaults.MAX_REQUEST_IMAGES + 1)}
        status, answer = call(url, "/v1/models/aocr:predict", body)
        assert status == 429 and "over the limit of 1024" in answer["error"], answer
    big = b64_bytes(hostile_images.png_bomb(2500, 2500))  # 6.25 megapixels: under the image limit, two are not
    status, answer = call(url, "/v1/models/aocr:predict", {"instances": [{"b64": big}] * 2})
    assert status == 429 and "megapixels in all" in answer["error"], answer
    good, answer = call(url, "/v1/models/aocr:predict", {"instances": [{"b64": b64(digits_set.images[0])}]})
    assert good == 200 and answer["predictions"][0]["output"] == expected[0]


def test_the_pixels_signature_reads_as_serving_default_over_rest_and_grpc(server, grpc_address, digits_set,
                                                                           expected, trained_model):
    """Images decoded by the client (examples/pixels_client.py's prepare) read as their encoded bytes do, in the
    REST API's columnar and row formats and over gRPC; a pixels request is bounded in images too."""
    import grpc

    url, _ = server
    params = json.loads((trained_model / "params.json").read_text(encoding="utf-8"))
    pixels, widths = example_pixels_client().prepare([Image.open(path) for path in digits_set.images[:3]],
                                                     params["image_height"], params["channels"], params_limit(params))
    body = {"signature_name": "pixels", "inputs": {"images": pixels.tolist(), "widths": widths.tolist()}}
    status, columnar = call(url, "/v1/models/aocr:predict", body)
    assert status == 200 and columnar["outputs"]["output"] == expected[:3], columnar
    rows = [{"images": image.tolist(), "widths": int(width)} for image, width in zip(pixels, widths, strict=True)]
    status, answer = call(url, "/v1/models/aocr:predict", {"signature_name": "pixels", "instances": rows})
    assert status == 200 and [row["output"] for row in answer["predictions"]] == expected[:3]
    prediction, _ = grpc_stubs(grpc_address)
    outputs, spec = grpc_predict(prediction, signature="pixels", inputs={"images": pixels, "widths": widths})
    assert [text.decode() for text in outputs["output"]] == expected[:3] and spec.signature_name == "pixels"
    assert outputs["probability"].tolist() == pytest.approx(columnar["outputs"]["probability"])
    too_many = np.zeros([defaults.MAX_REQUEST_IMAGES + 1, params["image_height"], 1, 1], np.float32)
    for inputs, code, text in [
        ({"images": too_many, "widths": np.ones(len(too_many), np.int32)}, grpc.StatusCode.RESOURCE_EXHAUSTED,
         "over the limit of 1024"),
        ({"images": np.full_like(pixels, np.inf), "widths": widths}, grpc.StatusCode.INVALID_ARGUMENT,
         "NaN or infinite"),
        ({"images": pixels, "widths": widths.astype(np.int64)}, grpc.StatusCode.INVALID_ARGUMENT,
         "Expects arg[1] to be int32 but int64 is provided"),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            grpc_predict(prediction, signature="pixels", inputs=inputs)
        assert caught.value.code() == code and text in caught.value.details()


def test_a_grpc_tensor_declaring_more_elements_than_it_carries_is_refused_at_once(server, grpc_address):
    import grpc
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    prediction, _ = grpc_stubs(grpc_address)
    for dims, values in [([1_000_000_000], []), ([2], [b"x"]), ([-1], [])]:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "aocr"
        shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=n) for n in dims])
        request.inputs["input"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape,
                                                                string_val=values))
        with pytest.raises(grpc.RpcError) as error:
            prediction.Predict(request, timeout=20)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "values were sent" in error.value.details()


def test_a_connection_that_sends_nothing_is_closed_and_others_are_answered(exported, digits_set, expected):
    process, url, _ = start_server(exported, "--grpc-port", "0", cwd=exported.parent,
                                   before="import aocr.serving.server; aocr.serving.server.IDLE_TIMEOUT_S = 2.0")
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=20) as idle:
            started = time.monotonic()
            status, answer = call(url, "/v1/models/aocr:predict", {"instances": [{"b64": b64(digits_set.images[2])}]})
            assert status == 200 and answer["predictions"][0]["output"] == expected[2]
            assert idle.recv(1024) == b""  # the server closed it
            seconds = time.monotonic() - started
        assert 2.0 <= seconds <= 10.0, seconds
    finally:
        stop_server(process)


def test_a_hundred_idle_connections_do_not_keep_a_client_waiting(exported, digits_set, expected):
    process, url, _ = start_server(exported, "--grpc-port", "0", cwd=exported.parent)
    host, port = url.removeprefix("http://").split(":")
    idle = []
    try:
        idle = [socket.create_connection((host, int(port)), timeout=20) for _ in range(110)]
        started = time.monotonic()
        status, answer = call(url, "/v1/models/aocr:predict", {"instances": [{"b64": b64(digits_set.images[2])}]})
        assert status == 200 and answer["predictions"][0]["output"] == expected[2]
        assert time.monotonic() - started < 10.0  # not held until the idle ones time out (15 s)
    finally:
        for connection in idle:
            connection.close()
        stop_server(process)


def open_fds(process):
    return len(os.listdir(f"/proc/{process.pid}/fd"))


def settled_fds(process, at_most, seconds=10.0):
    """The server's open descriptors, once they are down to `at_most` (or after `seconds`)."""
    deadline = time.monotonic() + seconds
    while open_fds(process) > at_most and time.monotonic() < deadline:
        time.sleep(0.1)
    return open_fds(process)


def post_head(host, port, content_length):
    return (f"POST /v1/models/aocr:predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {content_length}\r\n\r\n").encode()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_clients_that_disconnect_mid_body_leave_nothing_behind_and_the_next_request_is_answered(
        server, digits_set, expected):
    url, process = server
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"instances": [{"b64": b64(digits_set.images[2])}]}).encode()
    assert call(url, "/v1/models/aocr:predict", raw=body)[0] == 200
    time.sleep(0.5)  # the server lets that connection go
    before = open_fds(process)
    for declared, sent, reset in [(len(body), 0, False), (len(body), len(body) // 2, False),
                                  (MAX_REQUEST_BYTES, MAX_REQUEST_BYTES // 2, False),
                                  (MAX_REQUEST_BYTES, MAX_REQUEST_BYTES // 3, True)]:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(post_head(host, port, declared) + (body + b" " * declared)[:sent])
            if reset:  # close with a TCP reset rather than a FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        status, answer = call(url, "/v1/models/aocr:predict", raw=body)
        assert status == 200 and answer["predictions"][0]["output"] == expected[2]
    assert settled_fds(process, before) <= before


def test_a_request_that_trickles_in_is_cut_off_and_holds_no_worker_meanwhile(exported, digits_set, expected):
    """A client that sends its body a byte at a time: the others are answered meanwhile, and its connection
    is closed once its request has taken over the arrival limit (2 s here, 60 s by default)."""
    process, url, _ = start_server(exported, "--grpc-port", "0", cwd=exported.parent,
                                   before="import aocr.serving.server; aocr.serving.server.ARRIVAL_TIMEOUT_S = 2.0")
    host, port = url.removeprefix("http://").split(":")
    body = {"instances": [{"b64": b64(digits_set.images[3])}]}
    try:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(post_head(host, port, 1000) + b'{"instances"')
            started = time.monotonic()
            status, answer = call(url, "/v1/models/aocr:predict", body)
            assert status == 200 and answer["predictions"][0]["output"] == expected[3]
            sock.settimeout(0.2)
            closed = None
            while closed is None and time.monotonic() - started < 20:
                try:
                    sock.sendall(b" ")
                    closed = "closed" if sock.recv(1024) == b"" else None
                except TimeoutError:
                    pass
                except OSError:  # reset, or a broken pipe
                    closed = "reset"
            seconds = time.monotonic() - started
        assert closed and 2.0 <= seconds <= 6.0, (closed, seconds)
        status, answer = call(url, "/v1/models/aocr:predict", body)
        assert status == 200 and answer["predictions"][0]["output"] == expected[3]
    finally:
        stop_server(process)


def test_the_n_best_signature_answers_like_predict_jsonl_over_rest_and_grpc(trained_model, digits_set, tmp_path,
                                                                             aocr_main):
    """An export with beam 5 and 3 candidates: its `n_best` signature, asked through REST and gRPC, gives
    `aocr predict --format jsonl --beam-width 5 --n-best 3`'s candidates; serving_default stays one text."""
    decoding = ["--beam-width", "5", "--n-best", "3"]
    assert aocr_main("export", str(tmp_path / "beam"), "--model-dir", str(trained_model), *decoding).returncode == 0
    paths = [str(p) for p in digits_set.images[:3]]
    predicted = aocr_main("predict", *paths, "--model-dir", str(trained_model), "--format", "jsonl", *decoding,
                          "--precision", "float32")
    candidates = [json.loads(line)["candidates"] for line in predicted.stdout.splitlines()]
    assert [len(c) for c in candidates] == [3, 3, 3]
    grpc_address = f"127.0.0.1:{free_port()}"
    process, url, _ = start_server(tmp_path / "beam", "--grpc-port", grpc_address.rsplit(":", 1)[1],
                                   "--precision", "float32", cwd=tmp_path)
    try:
        body = {"signature_name": "n_best", "instances": [{"b64": b64(digits_set.images[i])} for i in range(3)]}
        status, rest = call(url, "/v1/models/aocr:predict", body)
        assert status == 200, rest
        for row, wanted in zip(rest["predictions"], candidates, strict=True):
            assert row["texts"] == [c["text"] for c in wanted]
            assert row["probabilities"] == pytest.approx([c["probability"] for c in wanted], abs=1e-5)
            assert len(row["char_probabilities"]) == 3
            best = [c["probability"] for c in wanted[0]["characters"]]
            assert row["char_probabilities"][0][:len(best)] == pytest.approx(best, abs=1e-5)
        prediction, _ = grpc_stubs(grpc_address)
        outputs, spec = grpc_predict(prediction, [p.read_bytes() for p in digits_set.images[:3]], signature="n_best")
        assert spec.signature_name == "n_best" and outputs["texts"].shape == (3, 3)
        assert [[t.decode() for t in row] for row in outputs["texts"]] == [row["texts"] for row in rest["predictions"]]
        status, default = call(url, "/v1/models/aocr:predict", {"instances": body["instances"]})
        assert status == 200 and [row["output"] for row in default["predictions"]] == [c[0]["text"] for c in candidates]
    finally:
        stop_server(process)


def test_only_ascii_digits_name_a_version(tmp_path):
    from aocr.core import savedmodel
    from aocr.core.errors import AocrError
    from aocr.serving.servables import parse_labels

    for name in ("1", "²", "3a", "12", "٣"):
        (tmp_path / name).mkdir()
    assert savedmodel.versions(str(tmp_path)) == [1, 12]
    with pytest.raises(AocrError, match="expected LABEL=VERSION"):
        parse_labels(["stable=²"])


@pytest.mark.parametrize("client", ["rest_client.py", "grpc_client.py", "pixels_client.py"])
def test_the_example_clients_read_what_the_server_answers(server, grpc_address, digits_set, expected, client):
    """examples/: the REST client (standard library only), the gRPC client (TF Serving's stubs) and the pixels
    client (NumPy and Pillow), as a user runs them against a real server."""
    url, _ = server
    address = grpc_address if client == "grpc_client.py" else url
    images = [str(path) for path in digits_set.images[:3]]
    script = Path(__file__).resolve().parent.parent / "examples" / client
    result = subprocess.run([sys.executable, str(script), address, *images], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(path, text) for path, text, _ in rows] == list(zip(images, expected[:3], strict=True))
    assert all(0 < float(probability) <= 1 for _, _, probability in rows)
