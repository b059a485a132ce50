"""The flags several commands share, read off argparse's Namespace into the library's values: the model's
shape (explicit_shape, over the one table SHAPE_FLAGS) and the decoding (decoding_of)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aocr.core import defaults, options
from aocr.core.params import Decoding
from aocr.core.precision import inference_precision


@dataclass(frozen=True)
class ShapeFlag:
    """One ModelParams field as the command line sets it."""

    field: str  # the ModelParams field
    read: Callable[[argparse.Namespace], Any]  # args -> the value the user gave, or None when not given


def _value_of(key: str) -> Callable[[argparse.Namespace], Any]:
    return lambda args: getattr(args, key, None)


def _charset_given(args: argparse.Namespace) -> str | None:
    if getattr(args, "charset", None) is not None:
        return args.charset  # "auto", a file or the characters: passed through as given
    return defaults.FULL_ASCII_CHARSET if getattr(args, "full_ascii", None) else None


def _force_uppercase_given(args: argparse.Namespace) -> bool | None:
    if getattr(args, "force_uppercase", None):
        return True
    return False if getattr(args, "no_force_uppercase", None) or getattr(args, "full_ascii", None) else None


# Every ModelParams field a flag sets: one row per aocr.core.options row of the shape, and the charset's two, whose
# flags exclude each other and --full-ascii sets both.
SHAPE_FLAGS = (
    *(ShapeFlag(row.field, _value_of(row.key)) for row in (*options.SHAPE, options.MODEL_DECODER)),
    ShapeFlag("charset", _charset_given),
    ShapeFlag("force_uppercase", _force_uppercase_given),
)


def explicit_shape(args: argparse.Namespace) -> dict[str, Any]:
    """The ModelParams fields the user set on the command line (unset flags are absent).

    Values pass through as given: "auto" stays "auto", and --charset stays the raw string.
    """
    given = {row.field: row.read(args) for row in SHAPE_FLAGS}
    return {field: value for field, value in given.items() if value is not None}


def decoding_of(args: argparse.Namespace) -> Decoding:
    """The --beam-width, --n-best, --lexicon and --precision flags of test, predict and export (aocr.cli.parser
    checks that N <= K); defaults where a verb has none."""
    return Decoding(getattr(args, "beam_width", None) or 1, getattr(args, "n_best", None) or 1,
                    getattr(args, "lexicon", None),
                    inference_precision(getattr(args, "precision", None) or "float32", getattr(args, "gpu_id", None)),
                    getattr(args, "decoder", None))
