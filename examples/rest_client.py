"""Read images with a model served over TensorFlow Serving's REST API, by `aocr serve` or by
tensorflow_model_server, with nothing but the Python standard library.

    python examples/rest_client.py http://127.0.0.1:8501 image.png [image.png ...]

Prints one line per image: path, text and probability, tab-separated.
"""

from __future__ import annotations

import base64
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path


def read(server: str, paths: list[str], model: str = "aocr", timeout: float = 60) -> list[dict]:
    """The predictions for the images at `paths`: one {"output", "probability"} per image, in order."""
    body = {"instances": [{"b64": base64.b64encode(Path(path).read_bytes()).decode("ascii")} for path in paths]}
    request = urllib.request.Request(f"{server}/v1/models/{model}:predict", data=json.dumps(body).encode("utf-8"),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)["predictions"]
    except urllib.error.HTTPError as error:  # the server says why in {"error": ...}
        raise SystemExit(f"{error.code}: {json.load(error).get('error', error.reason)}") from None


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    server, paths = sys.argv[1].rstrip("/"), sys.argv[2:]
    for path, prediction in zip(paths, read(server, paths), strict=True):
        print(f"{path}\t{prediction['output']}\t{prediction['probability']:.6f}")


if __name__ == "__main__":
    main()
