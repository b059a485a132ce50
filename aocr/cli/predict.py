"""`aocr predict`: the flags -> aocr.inference.predict.predict_files."""

from __future__ import annotations

import argparse

from aocr.cli.recognizer import recognizer_of
from aocr.inference.predict import predict_files


def run(args: argparse.Namespace) -> int:
    recognizer = recognizer_of(args)
    predict_files(recognizer, args.paths, args.batch_size, args.format, args.n_best is not None,
                  args.output_dir if args.visualize else None)
    return 0
