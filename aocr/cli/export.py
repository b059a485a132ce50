"""`aocr export`: the flags -> aocr.export.export.export_model."""

from __future__ import annotations

import argparse

from aocr.cli.flags import decoding_of, explicit_shape
from aocr.data.survey import resolve_flags
from aocr.export.export import export_model


def run(args: argparse.Namespace) -> int:
    explicit = resolve_flags(explicit_shape(args))
    export_model(args.model_dir, explicit, args.export_path, args.format, args.export_version, args.force,
                 args.checkpoint, decoding_of(args))
    return 0
