"""Read images that your program has already decoded (a camera frame, a crop of a page) with a model served
over TensorFlow Serving's REST API, through the export's `pixels` signature: the client resizes the images
to the model's height and sends their pixels, so the server decodes nothing.

    python examples/pixels_client.py http://127.0.0.1:8501 image.png [image.png ...]

Prints one line per image: path, text and probability, tab-separated. Needs NumPy and Pillow.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

import numpy as np
from PIL import Image

GRAY = np.array([0.2989, 0.587, 0.114])  # tf.image.rgb_to_grayscale's weights


def prepare(images: list[Image.Image], height: int, channels: int,
            max_width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The `pixels` signature's inputs for `images`, made as the export's own decoding makes them.

    Returns images float32 [N, height, W, channels] (0-255, each padded with zeros on the right to the
    widest) and widths int32 [N]. Each image keeps its aspect ratio, its width rounded to a multiple of 4;
    max_width caps it as the export caps an encoded image (4 x ceil(max_width / max_height x height / 4)
    of the model's params.json); without it, the width is what the aspect ratio gives.
    """
    resized = []
    for image in images:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
        if channels == 1:  # as TensorFlow turns 8-bit RGB into gray
            rgb = np.floor(rgb / 255 @ GRAY * 255.5)[:, :, None]
        width = max(4, int(4 * np.round(rgb.shape[1] * height / rgb.shape[0] / 4)))
        width = min(width, max_width) if max_width else width
        planes = [Image.fromarray(np.ascontiguousarray(rgb[:, :, c])).resize((width, height), Image.BILINEAR)
                  for c in range(rgb.shape[2])]
        resized.append(np.clip(np.stack(planes, axis=2), 0, 255))
    widths = np.array([image.shape[1] for image in resized], np.int32)
    batch = np.zeros([len(resized), height, widths.max(), channels], np.float32)
    for number, image in enumerate(resized):
        batch[number, :, :image.shape[1]] = image
    return batch, widths


def call(url: str, body: dict | None = None, timeout: float = 60) -> dict:
    """GET (no body) or POST JSON to the server; its {"error": ...} becomes the exit message."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{error.code}: {json.load(error).get('error', error.reason)}") from None


def model_shape(server: str, model: str) -> tuple[int, int]:
    """(height, channels) of the served model, from its `pixels` signature's images input [-1, H, -1, C]."""
    metadata = call(f"{server}/v1/models/{model}/metadata")
    signature = metadata["metadata"]["signature_def"]["signature_def"]["pixels"]
    dims = signature["inputs"]["images"]["tensor_shape"]["dim"]
    return int(dims[1]["size"]), int(dims[3]["size"])


def read(server: str, images: list[Image.Image], model: str = "aocr") -> list[tuple[str, float]]:
    """(text, probability) for each image, in order."""
    height, channels = model_shape(server, model)
    pixels, widths = prepare(images, height, channels)
    body = {"signature_name": "pixels", "inputs": {"images": pixels.tolist(), "widths": widths.tolist()}}
    outputs = call(f"{server}/v1/models/{model}:predict", body)["outputs"]
    return list(zip(outputs["output"], outputs["probability"], strict=True))


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    server, paths = sys.argv[1].rstrip("/"), sys.argv[2:]
    for path, (text, probability) in zip(paths, read(server, [Image.open(path) for path in paths]), strict=True):
        print(f"{path}\t{text}\t{probability:.6f}")


if __name__ == "__main__":
    main()
