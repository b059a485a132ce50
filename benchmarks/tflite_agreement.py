"""Does the .tflite export answer like the SavedModel? Every image of the benchmark's rendered test set.

Exports the model (--model-dir, default the 10-minute model of benchmarks/learning.py) both ways, reads
the 500 rendered test images through the SavedModel (one batch per 65 images) and through
model.tflite (one image per invocation), and counts the texts that agree and the right ones; prints
ms/image of each. Writes benchmarks/out/tflite_agreement.json.

    python benchmarks/tflite_agreement.py [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LEARNED_MODEL, machine, print_table, rendered_test_images, write_json  # noqa: E402

from aocr.core import (
    defaults,  # noqa: E402
    savedmodel,  # noqa: E402
)
from aocr.core import params as model_params  # noqa: E402
from aocr.core.params import GREEDY  # noqa: E402
from aocr.core.session import choose_checkpoint  # noqa: E402
from aocr.export.export import export_savedmodel, sample_image  # noqa: E402
from aocr.export.tflite import export_tflite, read_tflite  # noqa: E402


def savedmodel_texts(path: str, images: list[bytes]) -> list[str]:
    loaded = savedmodel.load(path)
    try:
        texts = []
        for start in range(0, len(images), defaults.BATCH_SIZE):
            batch = images[start:start + defaults.BATCH_SIZE]
            texts += [text.decode("utf-8") for text in
                      loaded.session.run(loaded.output_names[savedmodel.TEXT_KEY], {loaded.input_name: batch})]
        return texts
    finally:
        loaded.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=str(LEARNED_MODEL))
    args = parser.parse_args()
    labels, images = rendered_test_images()
    params = model_params.require(args.model_dir)
    checkpoint = choose_checkpoint(args.model_dir, "best")
    with tempfile.TemporaryDirectory() as temp:
        saved = export_savedmodel(checkpoint, params, f"{temp}/savedmodel", None, False)
        lite = export_tflite(checkpoint, params, f"{temp}/tflite", False, GREEDY, sample_image())
        start = time.perf_counter()
        from_savedmodel = savedmodel_texts(saved, images)
        savedmodel_ms = 1000 * (time.perf_counter() - start) / len(images)
        start = time.perf_counter()
        from_tflite = [text for text, _ in read_tflite(lite, images, params)]
        tflite_ms = 1000 * (time.perf_counter() - start) / len(images)
    agree = sum(a == b for a, b in zip(from_savedmodel, from_tflite, strict=True))
    right = {name: sum(text == label for text, label in zip(texts, labels, strict=True))
             for name, texts in (("savedmodel", from_savedmodel), ("tflite", from_tflite))}
    table = [("export", "words right", "ms/image")]
    table += [("SavedModel (batches of 65)", f"{right['savedmodel']} of {len(images)}", f"{savedmodel_ms:.2f}"),
              ("model.tflite (one at a time)", f"{right['tflite']} of {len(images)}", f"{tflite_ms:.2f}"),
              ("same text", f"{agree} of {len(images)}", "")]
    print_table(table)
    results = {"machine": machine(), "images": len(images), "same_text": agree, "right": right,
               "savedmodel_ms_per_image": savedmodel_ms, "tflite_ms_per_image": tflite_ms}
    print(f"written to {write_json('tflite_agreement.json', results)}")


if __name__ == "__main__":
    main()
