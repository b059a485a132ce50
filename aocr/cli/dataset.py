"""`aocr dataset`: the flags -> aocr.data.writer.build_dataset."""

from __future__ import annotations

import argparse

from aocr.cli.flags import explicit_shape
from aocr.data.writer import build_dataset


def run(args: argparse.Namespace) -> int:
    """`aocr dataset`: write the records, then say what was seen and what a new model will take from them."""
    build_dataset(args.annotations_path, args.output_path, explicit_shape(args), args.max_image_pixels,
                  args.save_filename, args.log_step)
    return 0
