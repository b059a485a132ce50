"""A new model's shape from its training data: `--charset auto`, `--max-prediction auto`,
`--max-width auto` and `--max-height auto` (an absent flag means auto for a new model).

One pass over the TFRecords reads every label (the charset and the longest label must see
them all) and the image sizes of an evenly spread sample of at most SIZE_SAMPLE records,
from the image headers only, through tf.io.gfile (local, gs:// and ram:// paths).
"""

from __future__ import annotations

import logging
import math
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from aocr.core import defaults
from aocr.core.charset import Charset, charset_from_text, find_bad_char, normalize_label, uppercase_by_default
from aocr.core.errors import AocrError
from aocr.core.images import BadImage, image_size
from aocr.core.options import AUTO, FLAG_OF
from aocr.data.annotations import read_utf8
from aocr.data.records import iter_records

log = logging.getLogger("aocr")

# Image sizes come from at most this many records, spread evenly over the files: enough for a
# steady 99th percentile (200 images above it), few enough to take about a second.
SIZE_SAMPLE = 20000
# Images up to this percentile of width/height fit unsqueezed; the rest are shrunk to fit, as any
# image wider than the maximum always is. Not the maximum: one odd image (a whole paragraph, a
# mislabeled crop) would otherwise widen the input of every batch that holds a wide line and
# lengthen the attention over mostly padding. Not lower: a squeezed line loses detail exactly
# where the characters are densest, and at the 99th only 1 image in 100 is squeezed.
RATIO_PERCENTILE = 99


def is_auto(value: Any) -> bool:
    """True when a field is to be taken from the data: the flag was absent (None) or 'auto'."""
    return value is None or value == AUTO


def _is_file(path: str) -> bool:
    try:
        return tf.io.gfile.exists(path)
    except (tf.errors.OpError, ValueError):  # a literal charset that looks like an unknown URL scheme
        return False


def read_charset_file(path: str) -> tuple[str, str]:
    """The charset in a charset file and the rule that read it (see charset_from_text).

    An empty, unreadable or non-UTF-8 file is an AocrError naming it.
    """
    if tf.io.gfile.isdir(path):
        raise AocrError(f"--charset {path}: a directory, not a charset file")
    text = read_utf8(path, "--charset")
    try:
        return charset_from_text(text, path)
    except ValueError as e:
        raise AocrError(f"--charset {e}") from None


def charset_from_flag(value: str | None) -> tuple[str | None, str]:
    """The characters --charset names (None for auto or an absent flag), and where they came from.

    A value naming a readable file is read from it; anything else is the characters
    themselves, NFC-normalized.
    """
    if is_auto(value):
        return None, "auto"
    if _is_file(value):
        chars, rule = read_charset_file(value)
        return chars, f"the file {value}: {rule}"
    chars = unicodedata.normalize("NFC", value)
    bad = find_bad_char(chars)
    if bad is not None:
        raise AocrError(f"--charset: character {bad[0]} is {bad[1]}, which no label may hold")
    try:
        Charset(chars)
    except ValueError as e:
        raise AocrError(f"--charset {value!r} is no file, and as characters: {e}") from None
    return chars, f"the {len(chars)} characters given"


def warn_unreachable(charset: Charset) -> None:
    """Warn about characters of a fixed charset that no normalized label can hold (lower case when upper-casing)."""
    unreachable = charset.unreachable_chars()
    if unreachable:
        log.warning("the charset has %d characters that no label holds once upper-cased and NFC-normalized: %s; "
                    "pass --no-force-uppercase to keep the labels' case", len(unreachable), preview(unreachable))


@dataclass
class Survey:
    """What a pass over the training records saw.

    chars counts the characters of the labels a model can learn (normalized, without
    control characters, and inside the fixed charset when there is one); sizes is int64
    [n, 2] (width, height) of the sampled images.
    """

    records: int = 0
    chars: Counter = field(default_factory=Counter)
    longest: str = ""
    bad_labels: int = 0
    outside_charset: int = 0
    sizes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    bad_images: int = 0
    stride: int = 1


def survey_records(files: list[str], force_uppercase: bool = True, charset: str | None = None,
                   sample: int = SIZE_SAMPLE) -> Survey:
    """Read every label of `files` and the header sizes of an evenly spread sample of their images.

    The sample keeps the records whose position is a multiple of a stride that doubles
    whenever more than `sample` are kept, so at most `sample` sizes are held and they are
    spread over all the files whatever their number of records.
    """
    survey = Survey()
    known = set(charset) if charset is not None else None
    kept: list[tuple[int, int, int]] = []  # (position, width, height)
    for record in iter_records(files):
        survey.records += 1
        label = normalize_label(record.label, force_uppercase)
        if find_bad_char(label) is not None:
            survey.bad_labels += 1
        elif known is not None and not known.issuperset(label):
            survey.outside_charset += 1
        else:
            survey.chars.update(label)
            if len(label) > len(survey.longest):
                survey.longest = label
        if sample and record.position % survey.stride == 0:
            try:
                kept.append((record.position, *image_size(record.image, full_decode=False)))
            except BadImage:
                survey.bad_images += 1
            if len(kept) > sample:
                survey.stride *= 2
                kept = [k for k in kept if k[0] % survey.stride == 0]
    if kept:
        survey.sizes = np.array([k[1:] for k in kept], np.int64)
    return survey


@dataclass(frozen=True)
class ShapeChoice:
    """max_width and max_height whose ratio is the sample's RATIO_PERCENTILE aspect ratio, and the facts behind it."""

    max_width: int
    max_height: int
    ratio: float  # width / height at the percentile
    widest: tuple[int, int]  # (width, height) of the sample's widest image for its height
    shrunk: int  # sampled images wider than `ratio`
    sampled: int
    median_height: bool  # max_height is the median height (not the user's)

    def describe(self) -> str:
        """One line: the choice, why, and the flags that would change it."""
        width, height = self.widest
        why = (f"{'the median height and ' if self.median_height else ''}the {RATIO_PERCENTILE}th-percentile "
               f"aspect ratio {self.ratio:.2f} of {self.sampled} images")
        if not self.shrunk:
            return f"--max-width {self.max_width} --max-height {self.max_height}: {why}; no image is shrunk"
        keep_all = math.ceil(width / height * self.max_height)
        factor = width / height / self.ratio
        return (f"--max-width {self.max_width} --max-height {self.max_height}: {why}; {self.shrunk} of them are "
                f"wider and will be shrunk to fit (the widest, {width}x{height}, by {factor:.2f}x); "
                f"--max-width {keep_all} --max-height {self.max_height} keeps every image unsqueezed, a smaller "
                "--max-width shrinks more of them")


def choose_shape(sizes: np.ndarray, max_width: int | None = None, max_height: int | None = None) -> ShapeChoice:
    """max_width/max_height for images of these (width, height) sizes; either one may be fixed by the user.

    Unfixed, max_height is the median height and max_width the RATIO_PERCENTILE aspect
    ratio times it, rounded up; with one of them fixed, the other keeps that ratio.
    """
    if len(sizes) == 0:
        raise AocrError("no readable image to take --max-width/--max-height from; pass both")
    ratios = sizes[:, 0] / sizes[:, 1]
    ratio = float(np.percentile(ratios, RATIO_PERCENTILE, method="higher"))
    widest = tuple(int(v) for v in sizes[int(np.argmax(ratios))])
    median_height = max_height is None and max_width is None
    if max_height is None and max_width is not None:
        max_height = max(1, math.floor(max_width / ratio))
    if max_height is None:
        max_height = max(1, math.ceil(float(np.median(sizes[:, 1]))))
    if max_width is None:
        max_width = max(1, math.ceil(ratio * max_height))
    return ShapeChoice(max_width, max_height, ratio, widest, int((ratios > ratio).sum()), len(sizes), median_height)


def preview(chars: str, limit: int = 120) -> str:
    """repr of a charset, cut after `limit` characters (a CJK charset has thousands)."""
    return repr(chars) if len(chars) <= limit else f"{chars[:limit]!r}... ({len(chars) - limit} more)"


def _auto_charset(survey: Survey, files: list[str]) -> str:
    if not survey.chars:
        raise AocrError(f"the labels of {', '.join(files)} hold no character to make a charset from; "
                        "pass --charset")
    return "".join(sorted(survey.chars))


def _new_model_decoder(explicit: dict[str, Any]) -> tuple[str, str]:
    """(the heads of a new model whose --decoder is auto, why): the attention decoder where a flag that only
    shapes it was given (a script written for the original aocr), else defaults.NEW_MODEL_DECODER."""
    shaping = [FLAG_OF[field] for field in defaults.ATTENTION_DECODER_FIELDS if field in explicit]
    if shaping:
        return "attention", f"{' and '.join(shaping)} shape the attention decoder, trained with a CTC head beside it"
    return defaults.NEW_MODEL_DECODER, ("the CTC head alone, which learns fastest; --decoder attention adds the "
                                        "attention decoder")


def resolve_from_data(explicit: dict[str, Any], files: list[str]) -> dict[str, Any]:
    """A copy of `explicit` (the fields the user gave) with charset, max_width, max_height and
    max_prediction concrete: absent or 'auto' ones from a scan of the training TFRecords
    `files`, a charset naming a file read from it, any other charset taken as the characters.

    For a new model (no params.json yet); the result goes to params.resolve.
    """
    started = time.monotonic()
    resolved = dict(explicit)
    chars, source = charset_from_flag(explicit.get("charset"))
    force_uppercase = explicit.get("force_uppercase")
    if force_uppercase is None:
        force_uppercase = resolved["force_uppercase"] = uppercase_by_default(chars)
    width, height = explicit.get("max_width"), explicit.get("max_height")
    need_sizes = is_auto(width) or is_auto(height)
    survey = survey_records(files, force_uppercase, chars, SIZE_SAMPLE if need_sizes else 0)
    if survey.records == 0:
        raise AocrError(f"no readable record in {', '.join(files)}")
    log.info("scanned %d records in %d file(s) in %.1f s: every label, and the image sizes (from the headers) of "
             "%d records spread evenly over the files (one in %d, at most %d)", survey.records, len(files),
             time.monotonic() - started, len(survey.sizes), survey.stride, SIZE_SAMPLE)
    chosen = []
    if chars is None:
        chars = _auto_charset(survey, files)
        chosen.append(f"--charset {preview(chars)} ({len(chars)} characters of the labels, by code point)")
    else:
        if source.startswith("the file"):
            log.info("--charset from %s", source)
        warn_unreachable(Charset(chars, force_uppercase))
    resolved["charset"] = chars
    if is_auto(explicit.get("max_prediction")):
        resolved["max_prediction"] = max(1, len(survey.longest))
        chosen.append(f"--max-prediction {resolved['max_prediction']} (the longest label: {survey.longest!r})")
    if is_auto(explicit.get("decoder")):
        resolved["decoder"], why = _new_model_decoder(explicit)
        chosen.append(f"--decoder {resolved['decoder']} ({why})")
    if need_sizes:
        shape = choose_shape(survey.sizes, None if is_auto(width) else width, None if is_auto(height) else height)
        resolved["max_width"], resolved["max_height"] = shape.max_width, shape.max_height
        log.info("image shape: %s", shape.describe())
        chosen.append(f"--max-width {shape.max_width} --max-height {shape.max_height}")
    if survey.bad_labels:
        log.warning("%d labels hold a control character, a byte-order mark or a NUL: left out of the charset, "
                    "and training skips them", survey.bad_labels)
    if chosen:
        log.info("from the data (auto): %s", "; ".join(chosen))
    return resolved


def resolve_flags(explicit: dict[str, Any]) -> dict[str, Any]:
    """For a model that has a params.json: `explicit` with a charset file or string read into its
    characters and every 'auto' field dropped (the stored value stands)."""
    resolved = {name: value for name, value in explicit.items() if value != AUTO}
    if "charset" in resolved:
        resolved["charset"] = charset_from_flag(resolved["charset"])[0]
    return resolved
