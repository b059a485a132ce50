"""The dataset builder behind `aocr dataset` (aocr.cli.dataset): annotation files, folders of line images with
their .gt.txt, PAGE-XML and ALTO files (aocr.data.sources) -> one TFRecords file of tf.train.Example records.

Each record holds `image` (the file's bytes, unchanged), `label` (UTF-8 text) and, with
--save-filename, `comment` (the image's path, or PAGE/ALTO file#line id): the keys the original aocr writes.
Images TensorFlow does not decode (TIFF...) are stored converted losslessly to PNG.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from aocr.core import defaults
from aocr.core.charset import Charset, find_bad_char, normalize_label, uppercase_by_default
from aocr.core.errors import AocrError
from aocr.core.files import atomic_output
from aocr.core.images import BadImage, image_size
from aocr.core.progress import Progress
from aocr.data.sources import Line, Unusable, read_input
from aocr.data.survey import charset_from_flag, choose_shape, is_auto, preview, warn_unreachable

log = logging.getLogger("aocr")

# Lines of one kind of problem logged in full before the rest are only counted.
SHOWN_PER_KIND = 10
# Characters whose counts are listed one by one; beyond that only the rarest are.
COUNTS_LISTED = 150


def make_example(image: bytes, label: str, comment: str | None = None) -> tf.train.Example:
    """A record with the original aocr's feature keys."""

    def as_bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    features = {"image": as_bytes(image), "label": as_bytes(label.encode("utf-8"))}
    if comment is not None:
        features["comment"] = as_bytes(comment.encode("utf-8"))
    return tf.train.Example(features=tf.train.Features(feature=features))


@dataclass(frozen=True)
class LabelRules:
    """How `aocr dataset` treats labels: the case rule, and the charset and length the user fixed (None: auto);
    and the most pixels an image may declare."""

    force_uppercase: bool = True
    charset: Charset | None = None
    max_prediction: int | None = None
    max_image_pixels: int = defaults.MAX_IMAGE_PIXELS  # images declaring more are skipped, never decoded


@dataclass
class DatasetReport:
    """What was written and skipped; chars counts the characters of the written labels."""

    written: int = 0
    skipped: int = 0
    too_long: int = 0
    longest_label: str = ""
    chars: Counter = field(default_factory=Counter)
    outside_charset: Counter = field(default_factory=Counter)
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height) of every written image


@dataclass
class Problems:
    """Warnings about unusable lines: the first few of each kind in full, the rest counted."""

    shown: int = SHOWN_PER_KIND
    counts: Counter = field(default_factory=Counter)

    def report(self, kind: str, where: str, message: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= self.shown:
            log.warning("%s: %s", where, message)

    def summarize(self) -> None:
        for kind, count in self.counts.items():
            if count > self.shown:
                log.warning("%d lines in all with %s (the first %d above)", count, kind, self.shown)


def _skip(report: DatasetReport, problems: Problems, kind: str, where: str, message: str) -> None:
    problems.report(kind, where, message)
    report.skipped += 1


def _write_one(line: Line, writer: tf.io.TFRecordWriter, rules: LabelRules, report: DatasetReport,
               problems: Problems, save_filename: bool) -> None:
    """Write one line's record, or report why not."""
    label = normalize_label(line.label, rules.force_uppercase)
    bad = find_bad_char(label)
    if bad is not None:
        return _skip(report, problems, "control characters", line.where, f"the label holds {bad[1]} at character "
                     f"{bad[0]}; skipped")
    if rules.max_prediction is not None and len(label) > rules.max_prediction:
        report.too_long += 1
        return _skip(report, problems, "labels too long", line.where, f"label of {len(label)} characters is longer "
                     f"than --max-prediction {rules.max_prediction}; skipped ({label[:80]!r})")
    try:
        image = line.load()
        size = image_size(image, max_pixels=rules.max_image_pixels, upright=True)
    except (AocrError, BadImage) as e:
        reason = str(e) if isinstance(e, BadImage) else str(e).removeprefix(f"{line.image}: ")
        return _skip(report, problems, "unreadable images", line.where, f"{line.image}: {reason}; skipped")
    writer.write(make_example(image, label, line.comment if save_filename else None).SerializeToString())
    report.written += 1
    report.sizes.append(size)
    report.chars.update(label)
    if len(label) > len(report.longest_label):
        report.longest_label = label
    outside = rules.charset.unknown_chars(label) if rules.charset is not None else set()
    if outside:
        report.outside_charset.update(c for c in label if c in outside)
        problems.report("characters outside the charset", line.where,
                        f"{''.join(sorted(outside))!r} outside the charset; written, but training with this charset "
                        f"skips it ({label[:80]!r})")


def write_dataset(inputs: list[str], output_path: str, rules: LabelRules | None = None,
                  save_filename: bool = False, log_step: int = defaults.LOG_STEP) -> DatasetReport:
    """Write every good line of the inputs (aocr.data.sources.read_input) as a record; report and skip the bad.

    Labels are written normalized (NFC, upper-cased unless rules say otherwise). Lines
    with a control character, a byte-order mark or a NUL, labels longer than an explicit
    max_prediction and unreadable images are skipped; labels with characters outside an
    explicit charset are written and reported. The output appears under its name only
    when complete (temporary file, then rename).
    """
    rules = rules or LabelRules()
    found = [item for spec in inputs for item in read_input(spec, rules.max_image_pixels)]
    lines = [item for item in found if isinstance(item, Line)]
    report, problems = DatasetReport(), Problems()
    for bad in (item for item in found if isinstance(item, Unusable)):
        _skip(report, problems, bad.kind, bad.where, f"{bad.reason}; skipped")
    progress = Progress("dataset", total=len(lines), log_every=log_step)
    try:
        with atomic_output(output_path) as temp, tf.io.TFRecordWriter(temp) as writer:
            for line in lines:
                progress.update()
                _write_one(line, writer, rules, report, problems, save_filename)
            if report.written == 0:
                problems.summarize()
                raise AocrError(f"{', '.join(inputs)}: no usable line, so {output_path} was not written")
    finally:
        progress.close()
    problems.summarize()
    return report


def count_lines(counts: Counter) -> list[str]:
    """Lines for the log: each character with its count, by code point; only the rarest when there are many."""
    if len(counts) <= COUNTS_LISTED:
        return ["character counts: " + ", ".join(f"{c!r} {n}" for c, n in sorted(counts.items()))]
    rarest = sorted(counts.items(), key=lambda item: (item[1], item[0]))[:COUNTS_LISTED]
    return [f"the {COUNTS_LISTED} rarest characters (-v lists all): " + ", ".join(f"{c!r} {n}" for c, n in rarest)]


def log_summary(report: DatasetReport, rules: LabelRules, output_path: str) -> None:
    """The closing lines of `aocr dataset`: counts, the characters seen, and what `aocr train` will take."""
    log.info("%s: %d written, %d skipped", output_path, report.written, report.skipped)
    chars = "".join(sorted(report.chars))
    log.info("labels hold %d distinct characters, %d in all: %s", len(chars), sum(report.chars.values()),
             preview(chars, 1000))
    for line in count_lines(report.chars):
        log.info("%s", line)
    log.debug("every character count: %s", ", ".join(f"{c!r} {n}" for c, n in sorted(report.chars.items())))
    if report.too_long:
        log.warning("%d lines skipped: label longer than --max-prediction %d; raise it, or leave it out for auto "
                    "(the longest label)", report.too_long, rules.max_prediction)
    if report.outside_charset:
        lacking = "".join(sorted(report.outside_charset))
        log.warning("the charset lacks %d of these characters: %s (%s); train with --charset auto (the labels' own "
                    "characters) or a charset that has them, or those records are skipped", len(lacking),
                    preview(lacking), ", ".join(f"{c!r} {n}" for c, n in sorted(report.outside_charset.items())[:50]))
    takes = [] if rules.charset else [f"--charset auto ({len(chars)} characters)"]
    if rules.max_prediction is None:
        takes.append(f"--max-prediction {max(1, len(report.longest_label))} (the longest label, "
                     f"{report.longest_label[:80]!r})")
    takes.append(choose_shape(np.array(report.sizes, np.int64)).describe())
    log.info("for a new model, `aocr train` with no shape flags takes %s", "; ".join(takes))


def build_dataset(inputs: list[str], output_path: str, shape: dict[str, Any], max_image_pixels: int,
                  save_filename: bool = False, log_step: int = defaults.LOG_STEP) -> DatasetReport:
    """`aocr dataset`'s work: write the records, then say what was seen and what a new model will take from them.

    shape: the ModelParams fields the user gave (charset, force_uppercase and max_prediction are read; the
    charset as given: 'auto', a file or the characters)."""
    chars, source = charset_from_flag(shape.get("charset"))
    force_uppercase = shape.get("force_uppercase")
    if force_uppercase is None:
        force_uppercase = uppercase_by_default(chars)
    charset = None
    if chars is not None:
        charset = Charset(chars, force_uppercase)
        log.info("charset: %s", source)
        warn_unreachable(charset)
    max_prediction = shape.get("max_prediction")
    rules = LabelRules(force_uppercase, charset, None if is_auto(max_prediction) else max_prediction,
                       max_image_pixels)
    report = write_dataset(inputs, output_path, rules, save_filename, log_step)
    log_summary(report, rules, output_path)
    return report
