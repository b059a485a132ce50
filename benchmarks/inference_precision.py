"""--precision bfloat16 against float32 for inference: ms/image and how many answers change.

The model (--model-dir, default the 10-minute model of benchmarks/learning.py) reads the 500 rendered
test images with each precision, in alternating rounds (best round of each kept); the answers of the
two are compared image by image and scored against the labels. Prints a table and writes
benchmarks/out/inference_precision.json.

    python benchmarks/inference_precision.py [--model-dir DIR] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LEARNED_MODEL, machine, print_table, rendered_test_images, write_json  # noqa: E402

from aocr import defaults  # noqa: E402
from aocr import params as model_params  # noqa: E402
from aocr.params import Decoding  # noqa: E402
from aocr.precision import cpu_has_bf16_units  # noqa: E402
from aocr.recognizer import Recognizer  # noqa: E402

PRECISIONS = ("float32", "bfloat16")


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
                start = time.perf_counter()
                results = recognizer.recognize(images, defaults.BATCH_SIZE)
                timings[name].append(1000 * (time.perf_counter() - start) / len(images))
                texts[name] = [result.text for result in results]
    finally:
        for recognizer in recognizers.values():
            recognizer.close()
    changed = sum(a != b for a, b in zip(texts["float32"], texts["bfloat16"], strict=True))
    accuracy = {name: sum(text == label for text, label in zip(answers, labels, strict=True)) / len(labels)
                for name, answers in texts.items()}
    table = [("precision", "ms/image (best round)", "word accuracy")]
    table += [(name, f"{min(timings[name]):.2f}", f"{100 * accuracy[name]:.2f}%") for name in PRECISIONS]
    table.append(("answers changed", f"{changed} of {len(images)}", f"{100 * changed / len(images):.2f}%"))
    print_table(table)
    results = {"machine": machine(), "cpu_has_bf16_units": cpu_has_bf16_units(), "ms_per_image": timings,
               "word_accuracy": accuracy, "answers_changed": changed, "images": len(images)}
    print(f"written to {write_json('inference_precision.json', results)}")


if __name__ == "__main__":
    main()
