"""`aocr dataset`: an annotation file -> one TFRecords file of tf.train.Example records.

Each record holds `image` (the file's bytes, unchanged), `label` (UTF-8 text) and, with
--save-filename, `comment` (the image's path): the keys the original aocr writes.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from dataclasses import dataclass, field

import tensorflow as tf

from aocr import defaults
from aocr.charset import Charset
from aocr.data.annotations import parse_annotations
from aocr.data.images import BadImage, image_size
from aocr.errors import AocrError
from aocr.fileio import atomic_output, read_bytes
from aocr.params import explicit_shape
from aocr.progress import Progress

log = logging.getLogger("aocr")


def make_example(image: bytes, label: str, comment: str | None = None) -> tf.train.Example:
    """A record with the original aocr's feature keys."""

    def as_bytes(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    features = {"image": as_bytes(image), "label": as_bytes(label.encode("utf-8"))}
    if comment is not None:
        features["comment"] = as_bytes(comment.encode("utf-8"))
    return tf.train.Example(features=tf.train.Features(feature=features))


@dataclass
class DatasetReport:
    written: int = 0
    skipped: int = 0
    blank_lines: int = 0
    longest_label: str = ""
    outside_charset: Counter = field(default_factory=Counter)
    widest: tuple[int, int] = (0, 1)  # (width, height) of the image with the largest aspect ratio


def write_dataset(annotations_path: str, output_path: str, charset: Charset,
                  save_filename: bool = False, log_step: int = defaults.LOG_STEP) -> DatasetReport:
    """Write every good annotation line's image as a record; report and skip the bad ones.

    The output appears under its name only when complete (temporary file, then rename).
    """
    annotations, bad_lines, blank = parse_annotations(annotations_path)
    report = DatasetReport(skipped=len(bad_lines), blank_lines=blank)
    for bad in bad_lines:
        log.warning("%s, line %d: %s; skipped (%r)", annotations_path, bad.line_number, bad.reason, bad.text[:80])
    progress = Progress("dataset", total=len(annotations), log_every=log_step)
    try:
        with atomic_output(output_path) as temp, tf.io.TFRecordWriter(temp) as writer:
            for item in annotations:
                progress.update()
                try:
                    image = read_bytes(item.path)
                    width, height = image_size(image)
                except (AocrError, BadImage) as e:
                    reason = str(e) if isinstance(e, BadImage) else str(e).removeprefix(f"{item.path}: ")
                    log.warning("%s, line %d: %s: %s; skipped", annotations_path, item.line_number, item.path, reason)
                    report.skipped += 1
                    continue
                label = charset.normalize(item.label)
                writer.write(make_example(image, label, item.path if save_filename else None).SerializeToString())
                report.written += 1
                report.outside_charset.update(charset.unknown_chars(label))
                if len(label) > len(report.longest_label):
                    report.longest_label = label
                if width * report.widest[1] > report.widest[0] * height:
                    report.widest = (width, height)
            if report.written == 0:
                raise AocrError(f"{annotations_path}: no usable line, so {output_path} was not written")
    finally:
        progress.close()
    return report


def run(args: argparse.Namespace) -> int:
    shape = explicit_shape(args)
    charset = Charset(shape.get("charset", defaults.DEFAULT_CHARSET), shape.get("force_uppercase", True))
    report = write_dataset(args.annotations_path, args.output_path, charset, args.save_filename, args.log_step)
    blank = f" ({report.blank_lines} blank lines ignored)" if report.blank_lines else ""
    log.info("%s: %d written, %d skipped%s", args.output_path, report.written, report.skipped, blank)
    log.info("longest label: %d characters (%r); train with --max-prediction %d or more",
             len(report.longest_label), report.longest_label, len(report.longest_label))
    width, height = report.widest
    log.info("widest image for its height: %dx%d; --max-width %d --max-height %d keep it unsqueezed "
             "(the defaults, %d and %d, fit images up to %.1f times as wide as tall; wider ones are shrunk to fit)",
             width, height, width, height, defaults.MAX_WIDTH, defaults.MAX_HEIGHT,
             defaults.MAX_WIDTH / defaults.MAX_HEIGHT)
    if report.outside_charset:
        chars = "".join(sorted(report.outside_charset))
        hint = "--full-ascii" if all(32 <= ord(c) < 127 for c in chars) else "--charset"
        log.warning("labels use characters outside the charset: %r (%d times); train with %s, "
                    "or those records will be skipped", chars, sum(report.outside_charset.values()), hint)
    return 0
