"""`aocr serve`: TF Serving's REST API on 127.0.0.1, driven by a real HTTP client."""

import base64
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import run_aocr

MAX_REQUEST_BYTES = 200_000


@pytest.fixture(scope="module")
def server(trained_model, tmp_path_factory):
    """`aocr serve` on a port the OS picks, stopped with SIGTERM at the end."""
    directory = tmp_path_factory.mktemp("served")
    exported = run_aocr("export", str(directory / "model"), "--model-dir", str(trained_model), cwd=directory)
    assert exported.returncode == 0, exported.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "aocr", "serve", str(directory / "model"), "--port", "0",
         "--max-request-bytes", str(MAX_REQUEST_BYTES)],
        cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = None
    deadline = time.monotonic() + 120
    while url is None and time.monotonic() < deadline:
        line = process.stderr.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        url = match.group(1) if match else None
        assert line or process.poll() is None, "aocr serve exited before listening"
    assert url, "aocr serve did not report its address"
    # Keep reading its log (one line per request), or a full pipe would stall the server.
    threading.Thread(target=process.stderr.read, daemon=True).start()
    yield url, process
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    assert process.returncode == 0


def call(url, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url + path, data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def b64(path):
    return base64.b64encode(path.read_bytes()).decode()


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


def test_status_and_metadata(server):
    url, _ = server
    for path in ("/v1/models/aocr", "/v1/models/aocr/versions/1"):
        status, answer = call(url, path)
        assert status == 200
        assert answer["model_version_status"][0]["version"] == "1"
        assert answer["model_version_status"][0]["state"] == "AVAILABLE"
    status, metadata = call(url, "/v1/models/aocr/metadata")
    assert status == 200
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["input"]["dtype"] == "DT_STRING"
    assert signature["outputs"]["output"]["dtype"] == "DT_STRING"
    assert signature["outputs"]["probability"]["dtype"] == "DT_DOUBLE"
    assert signature["method_name"] == "tensorflow/serving/predict"


@pytest.mark.parametrize(("path", "raw", "status", "words"), [
    ("/v1/models/aocr:predict", b"{not json", 400, "JSON"),
    ("/v1/models/aocr:predict", b'{"inputs": {"image": {"b64": "AAAA"}}}', 400, "input"),
    ("/v1/models/aocr:predict", b'{"instances": [{"b64": "***"}]}', 400, "base64"),
    ("/v1/models/aocr:predict", json.dumps({"instances": [{"b64": base64.b64encode(b"plain text").decode()}]})
     .encode(), 400, "image"),
    ("/v1/models/aocr:predict", b'{"signature_name": "other", "instances": []}', 400, "signature"),
    ("/v1/models/other:predict", b'{"instances": []}', 404, "other"),
    ("/v1/models/aocr/versions/9:predict", b'{"instances": []}', 404, "9"),
    ("/v1/models/aocr:predict", b'{"instances": [{"b64": "' + b"A" * MAX_REQUEST_BYTES + b'"}]}', 413, "limit"),
])
def test_bad_requests_get_json_errors_and_the_server_keeps_serving(server, digits_set, expected, path, raw, status,
                                                                   words):
    url, _ = server
    got, answer = call(url, path, raw=raw)
    assert got == status
    assert words.lower() in answer["error"].lower()
    good, answer = call(url, "/v1/models/aocr:predict", {"instances": [{"b64": b64(digits_set.images[0])}]})
    assert good == 200 and answer["predictions"][0]["output"] == expected[0]


def test_eight_concurrent_clients(server, digits_set, expected):
    url, _ = server
    body = {"instances": [{"b64": b64(digits_set.images[1])}]}

    def client(_):
        return [call(url, "/v1/models/aocr:predict", body) for _ in range(10)]

    with ThreadPoolExecutor(8) as pool:
        answers = [a for batch in pool.map(client, range(8)) for a in batch]
    assert len(answers) == 80
    assert all(status == 200 and answer["predictions"][0]["output"] == expected[1] for status, answer in answers)


def test_serve_without_an_export_is_a_clear_error(tmp_path):
    result = run_aocr("serve", str(tmp_path / "nothing"), "--port", "0", cwd=tmp_path)
    assert result.returncode != 0 and "aocr export" in result.stderr and "Traceback" not in result.stderr
