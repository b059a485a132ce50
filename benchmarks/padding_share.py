"""The padding share of training batches: how much of each batch's image tensor is padding, with the
training pipeline's width buckets and without them, on the same records at the same batch size.

    python benchmarks/padding_share.py NAME=RECORDS [NAME=RECORDS ...] [--batch-size 16] [--batches 300]

Shapes (charset, widths, height) come from the records, as `aocr train` chooses them at its defaults.
With buckets, the share is read off the batches aocr.data.pipeline.training_dataset makes: the padded
columns over all columns (B x W for a batch of B images padded to width W). Without them, the same
images' widths are batched in a shuffled order, as a plain padded batch would take them. Prints a
table and writes benchmarks/out/padding_share.json.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, print_table, write_json  # noqa: E402

AUTO_FIELDS = ("charset", "max_width", "max_height", "max_prediction", "decoder")


def share(batches: list[list[int]], padded_widths: list[int] | None = None) -> float:
    """Padding over all columns, for batches of image widths each padded to padded_widths (default: each
    batch's widest)."""
    padded_widths = padded_widths or [max(batch) for batch in batches]
    padded = sum(len(batch) * width for batch, width in zip(batches, padded_widths, strict=True))
    return 1 - sum(map(sum, batches)) / padded


def bucketed_batches(records: list[str], batch_size: int, count: int) -> tuple[list[list[int]], list[int], dict]:
    """The image widths of `count` batches from the training pipeline, the width each batch is padded to, and
    the model shape it was built for."""
    from aocr.core import params as model_params
    from aocr.data.pipeline import training_dataset
    from aocr.data.records import scan_labels
    from aocr.data.survey import resolve_from_data

    explicit = resolve_from_data(dict.fromkeys(AUTO_FIELDS, "auto"), records)
    with tempfile.TemporaryDirectory() as model_dir:
        params = model_params.resolve(explicit, None, model_dir)
    scan = scan_labels(records, params)
    batches, padded = [], []
    for batch in training_dataset(scan, params, batch_size, None, seed=0).take(count):
        batches.append(batch["widths"].numpy().tolist())
        padded.append(int(batch["images"].shape[2]))
    return batches, padded, {"image_width": params.image_width, "image_height": params.image_height}


def measure(name: str, records: list[str], batch_size: int, count: int) -> dict:
    with_buckets, padded, shape = bucketed_batches(records, batch_size, count)
    widths = [width for batch in with_buckets for width in batch]
    random.Random(0).shuffle(widths)
    without = [widths[start:start + batch_size] for start in range(0, len(widths), batch_size)]
    return {"set": name, "records": records, "batch_size": batch_size, "batches": len(with_buckets), **shape,
            "padding_without_buckets": share(without), "padding_with_buckets": share(with_buckets, padded)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="+", metavar="NAME=RECORDS", help="a name and its .tfrecords file(s), "
                        "comma-separated")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=300)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    rows = []
    for item in args.sets:
        name, _, paths = item.partition("=")
        rows.append(measure(name, paths.split(","), args.batch_size, args.batches))
    print_table([("set", "image width", "batches", "padding without buckets", "with buckets")] +
                [(row["set"], str(row["image_width"]), str(row["batches"]), f"{row['padding_without_buckets']:.1%}",
                  f"{row['padding_with_buckets']:.1%}") for row in rows])
    write_json("padding_share.json", {"machine": machine(), "runs": rows})


if __name__ == "__main__":
    main()
