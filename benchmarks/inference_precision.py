"""--precision bfloat16 against float32 for inference: ms/image and how many answers change.

The model (--model-dir, default the 10-minute model of benchmarks/learning.py) reads the 500 rendered
test images with each precision, in alternating rounds (best round of each kept); the answers of the
two are compared image by image and scored against the labels. Then the same for `aocr serve`'s way:
the model's float32 export in a session as `aocr serve --precision float32|bfloat16` makes it (the
bfloat16 one rewritten by Grappler), in batches of 8 as a server under load runs them. Prints a table
and writes benchmarks/out/inference_precision.json.

    python benchmarks/inference_precision.py [--model-dir DIR] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    LEARNED_MODEL,
    export_model,
    machine,
    print_table,
    rendered_test_images,
    timed_stream,
    write_json,
)

from aocr.core import defaults  # noqa: E402
from aocr.core import params as model_params  # noqa: E402
from aocr.core.params import Decoding  # noqa: E402
from aocr.core.precision import cpu_has_bf16_units  # noqa: E402
from aocr.inference.recognizer import Recognizer  # noqa: E402

PRECISIONS = ("float32", "bfloat16")
SERVED_BATCH = 8


def served_readings(model_dir: str, images: list[bytes], rounds: int) -> tuple[dict, dict]:
    """({precision: ms/image per round}, {precision: texts}) of the export run as `aocr serve` runs it."""
    import numpy as np

    from aocr.serving.servables import load_servable

    export_dir = export_model(model_dir, Path(tempfile.mkdtemp(prefix="aocr-precision-")))
    versions = {name: load_servable(str(export_dir), "aocr", None, {}, None, name).latest for name in PRECISIONS}
    batches = [np.array(images[start:start + SERVED_BATCH], dtype=object)
               for start in range(0, len(images), SERVED_BATCH)]
    timings: dict[str, list[float]] = {name: [] for name in PRECISIONS}
    texts: dict[str, list[str]] = {}
    try:
        for _ in range(rounds):
            for name, version in versions.items():
                start = time.perf_counter()
                answers = [version.run(batch)["output"] for batch in batches]
                timings[name].append(1000 * (time.perf_counter() - start) / len(images))
                texts[name] = [text.decode() for answer in answers for text in answer]
    finally:
        for version in versions.values():
            version.close(timeout=0.0)
    return timings, texts


def summary(timings: dict, texts: dict, labels: list[str], what: str) -> tuple[list[tuple[str, str, str]], dict]:
    """Table rows and figures: ms/image (best round), word accuracy and answers changed by bfloat16."""
    changed = sum(a != b for a, b in zip(texts["float32"], texts["bfloat16"], strict=True))
    accuracy = {name: sum(text == label for text, label in zip(answers, labels, strict=True)) / len(labels)
                for name, answers in texts.items()}
    rows = [(f"{what}, {name}", f"{min(timings[name]):.2f}", f"{100 * accuracy[name]:.2f}%") for name in PRECISIONS]
    rows.append((f"{what}, answers changed", f"{changed} of {len(labels)}", f"{100 * changed / len(labels):.2f}%"))
    return rows, {"ms_per_image": timings, "word_accuracy": accuracy, "answers_changed": changed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=str(LEARNED_MODEL))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    labels, images = rendered_test_images()
    params = model_params.require(args.model_dir)
    recognizers = {name: Recognizer.load(args.model_dir, params, decoding=Decoding(precision=name))
                   for name in PRECISIONS}
    timings: dict[str, list[float]] = {name: [] for name in PRECISIONS}
    texts: dict[str, list[str]] = {}
    try:
        for recognizer in recognizers.values():
            recognizer.recognize(images[:defaults.BATCH_SIZE], defaults.BATCH_SIZE)  # warm-up
        for _ in range(args.rounds):
            for name, recognizer in recognizers.items():
                ms_per_image, results = timed_stream(recognizer, images)
                timings[name].append(ms_per_image)
                texts[name] = [result.text for result in results]
    finally:
        for recognizer in recognizers.values():
            recognizer.close()
    rows, predicted = summary(timings, texts, labels, "predict")
    served_timings, served_texts = served_readings(args.model_dir, images, args.rounds)
    served_rows, served = summary(served_timings, served_texts, labels, f"served, batches of {SERVED_BATCH}")
    print_table([("reading", "ms/image (best round)", "word accuracy"), *rows, *served_rows])
    results = {"machine": machine(), "cpu_has_bf16_units": cpu_has_bf16_units(), "images": len(images),
               "predict": predicted, "served": served}
    print(f"written to {write_json('inference_precision.json', results)}")


if __name__ == "__main__":
    main()
