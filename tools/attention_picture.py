"""The README's picture (docs/images/attention.png): a trained model's attention at each decoding step of one
image, the steps stacked top to bottom, as `aocr test --visualize` draws them.

    python tools/attention_picture.py MODEL_DIR IMAGE [docs/images/attention.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

from aocr.core import params as model_params
from aocr.inference.recognizer import Recognizer
from aocr.inference.visualize import encode_png, stack_frames, step_frames


def main() -> None:
    model_dir, image_path = sys.argv[1], Path(sys.argv[2])
    target = Path(sys.argv[3] if len(sys.argv) > 3 else "docs/images/attention.png")
    image = image_path.read_bytes()
    recognizer = Recognizer.load(model_dir, model_params.require(model_dir))
    try:
        [result] = recognizer.recognize([image], 1)
    finally:
        recognizer.close()
    target.write_bytes(encode_png(stack_frames(step_frames(image, result))))
    print(f"{image_path}: read {result.text!r} ({result.probability:.3f}); wrote {target}")


if __name__ == "__main__":
    main()
