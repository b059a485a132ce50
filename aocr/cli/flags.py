"""The flags several commands share, read off argparse's Namespace into the library's values: the model's
shape (explicit_shape, over the one table SHAPE_FLAGS) and the decoding (decoding_of)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aocr.core import defaults
from aocr.core.params import FLAG_OF, Decoding
from aocr.core.precision import inference_precision


@dataclass(frozen=True)
class ShapeFlag:
    """One ModelParams field as the command line sets it."""

    field: str  # the ModelParams field
    flag: str  # the flag(s) that set it, as messages name them (aocr.core.params.FLAG_OF)
    read: Callable[[argparse.Namespace], Any]  # args -> the value the user gave, or None when not given


def _value_of(dest: str) -> Callable[[argparse.Namespace], Any]:
    return lambda args: getattr(args, dest, None)


def _when_set(dest: str, value: Any) -> Callable[[argparse.Namespace], Any]:
    return lambda args: value if getattr(args, dest, None) else None


def _charset_given(args: argparse.Namespace) -> str | None:
    if getattr(args, "charset", None) is not None:
        return args.charset  # "auto", a file or the characters: passed through as given
    return defaults.FULL_ASCII_CHARSET if getattr(args, "full_ascii", None) else None


def _force_uppercase_given(args: argparse.Namespace) -> bool | None:
    if getattr(args, "force_uppercase", None):
        return True
    return False if getattr(args, "no_force_uppercase", None) or getattr(args, "full_ascii", None) else None


def _row(field: str, read: Callable[[argparse.Namespace], Any]) -> ShapeFlag:
    return ShapeFlag(field, FLAG_OF[field], read)


# The one table of flag <-> ModelParams field; aocr.cli.parser defines the flags themselves.
SHAPE_FLAGS = (
    _row("max_width", _value_of("max_width")),
    _row("max_height", _value_of("max_height")),
    _row("max_prediction", _value_of("max_prediction")),
    _row("charset", _charset_given),
    _row("force_uppercase", _force_uppercase_given),
    _row("channels", _when_set("color", 3)),
    _row("attn_num_hidden", _value_of("attn_num_hidden")),
    _row("attn_num_layers", _value_of("attn_num_layers")),
    _row("use_gru", _when_set("use_gru", True)),
    _row("target_embedding_size", _value_of("target_embedding_size")),
    _row("image_height", _value_of("image_height")),
    _row("cnn", _value_of("cnn")),
    _row("decoder", _value_of("model_decoder")),
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
