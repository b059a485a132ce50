"""`aocr dataset`: the flags -> aocr.data.writer.build_dataset."""

from __future__ import annotations

import argparse
import os

from aocr.cli.flags import explicit_shape
from aocr.core import defaults
from aocr.core.errors import AocrError
from aocr.data.records import is_tfrecords
from aocr.data.writer import build_dataset


def inputs_and_output(paths: list[str]) -> tuple[list[str], str]:
    """`aocr dataset INPUT [INPUT ...] [OUTPUT]`: with one path it is the input, as the original's
    `aocr dataset ANNOTATIONS` (the output then defaults); with more, the last is the output."""
    if len(paths) == 1:
        return paths, defaults.DATASET_OUTPUT
    output = paths[-1]
    if os.path.isdir(output):
        raise AocrError(f"{output} is a folder: name the TFRecords file to write last, such as "
                        f"{os.path.join(output, 'lines.tfrecords')}")
    if os.path.exists(output) and not is_tfrecords(output):
        raise AocrError(f"{output} exists and is not a TFRecords file, so it is not replaced: the last path is the "
                        "file aocr dataset writes; name a TFRecords file to write last")
    return paths[:-1], output


def run(args: argparse.Namespace) -> int:
    """`aocr dataset`: write the records, then say what was seen and what a new model will take from them."""
    inputs, output = inputs_and_output(args.paths)
    build_dataset(inputs, output, explicit_shape(args), args.max_image_pixels, args.save_filename, args.log_step)
    return 0
