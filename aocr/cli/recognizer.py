"""The Recognizer that the flags of `aocr test` and `aocr predict` describe."""

from __future__ import annotations

import argparse

from aocr.cli.flags import decoding_of, explicit_shape
from aocr.data.survey import resolve_flags
from aocr.inference.recognizer import Recognizer


def recognizer_of(args: argparse.Namespace) -> Recognizer:
    """--model-dir's model at --checkpoint, the shape flags checked against its params.json, decoding as
    --beam-width, --n-best, --lexicon and --precision say, on --gpu-id, skipping images over --max-image-pixels."""
    recognizer = Recognizer.from_model_dir(args.model_dir, resolve_flags(explicit_shape(args)), args.gpu_id,
                                           args.checkpoint, decoding_of(args))
    recognizer.max_pixels = args.max_image_pixels
    return recognizer
