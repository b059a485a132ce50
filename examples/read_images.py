"""Read image files with a trained model from your own Python program, through aocr's Recognizer.

    python examples/read_images.py MODEL_DIR image.png [image.png ...]

Prints one line per image: path, text and probability, tab-separated; an image that cannot be read
is named on stderr with the reason, and the others are still read.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aocr.inference.recognizer import Recognizer, Unreadable


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    model_dir, paths = sys.argv[1], sys.argv[2:]
    recognizer = Recognizer.from_model_dir(model_dir, {})  # shapes from params.json, the best checkpoint
    try:
        images = [Path(path).read_bytes() for path in paths]
        for path, result in zip(paths, recognizer.recognize(images, batch_size=65), strict=True):
            if isinstance(result, Unreadable):
                print(f"{path}: skipped, {result.reason}", file=sys.stderr)
            else:
                print(f"{path}\t{result.text}\t{result.probability:.6f}")
    finally:
        recognizer.close()


if __name__ == "__main__":
    main()
