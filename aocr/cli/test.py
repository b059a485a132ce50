"""`aocr test`: the flags -> aocr.inference.evaluate.score_model."""

from __future__ import annotations

import argparse

from aocr.cli.recognizer import recognizer_of
from aocr.inference.evaluate import score_model


def run(args: argparse.Namespace) -> int:
    recognizer = recognizer_of(args)
    score_model(recognizer, args.dataset_path, args.batch_size, args.no_distance,
                args.output_dir if args.visualize else None)
    return 0
