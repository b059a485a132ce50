"""Reading TFRecords in Python: listing files, iterating records, checking labels before training.

Records written by the original aocr load as they are: `image` and `label` are required,
`comment` is optional.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from aocr.core import defaults
from aocr.core.charset import EOS_ID, GO_ID, PAD_ID, Charset, find_bad_char
from aocr.core.errors import AocrError
from aocr.core.images import check_image_header
from aocr.core.params import ModelParams

log = logging.getLogger("aocr")


def expand_dataset_paths(spec: str) -> list[str]:
    """Files named by a path, a glob or a comma-separated list of either; each must exist."""
    files: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        matches = sorted(tf.io.gfile.glob(part)) if any(c in part for c in "*?[") else [part]
        if not matches or not all(tf.io.gfile.exists(m) for m in matches):
            raise AocrError(f"{part}: no such TFRecords file; make one with `aocr dataset`")
        files.extend(m for m in matches if not tf.io.gfile.isdir(m))
    if not files:
        raise AocrError(f"{spec!r} names no TFRecords file")
    return files


@dataclass(frozen=True)
class Record:
    """One readable record. `position` counts records across all files, from 0."""

    source: str
    position: int
    image: bytes
    label: str
    comment: str | None


def is_tfrecords(path: str) -> bool:
    """Whether a file is a TFRecords file (its first record's framing checks out; an empty file is one)."""
    try:
        next(iter(tf.compat.v1.io.tf_record_iterator(path)), None)
    except (tf.errors.OpError, OSError):
        return False
    return True


def _feature_bytes(example: tf.train.Example, key: str) -> bytes | None:
    feature = example.features.feature.get(key)
    if feature is None or not feature.bytes_list.value:
        return None
    return feature.bytes_list.value[0]


# Within each_problem_once: the (file, record index) whose problem has been logged already.
_reported: set[tuple[str, int]] | None = None


@contextlib.contextmanager
def each_problem_once() -> Iterator[None]:
    """Within the block, a record's problem is logged by the first pass over the files that meets it and
    not by later ones (training a new model reads its files twice: to settle what is on auto, then to scan)."""
    global _reported
    outer, _reported = _reported, set()
    try:
        yield
    finally:
        _reported = outer


def _warn(path: str, index: int, message: str, *args: object) -> None:
    if _reported is not None:
        if (path, index) in _reported:
            return
        _reported.add((path, index))
    log.warning(message, *args)


def iter_records(files: list[str], readable_counts: dict[str, int] | None = None) -> Iterator[Record]:
    """Every record with an image and a label, in file order.

    A truncated or corrupt record ends its file with a warning naming the file; records
    without `image` or `label` are skipped with a warning. When given, readable_counts
    receives the number of records each file yields to TFRecordDataset before its first
    unreadable one.
    """
    position = 0
    for path in files:
        index = -1
        try:
            for index, raw in enumerate(tf.compat.v1.io.tf_record_iterator(path)):
                try:
                    example = tf.train.Example.FromString(raw)
                except Exception:  # protobuf's DecodeError has no stable public import path
                    example = None
                image = _feature_bytes(example, "image") if example else None
                label = _feature_bytes(example, "label") if example else None
                if image is None or label is None:
                    _warn(path, index, "%s, record %d: no 'image' or 'label' feature; skipped", path, index)
                    label = None
                if label is not None:
                    comment = _feature_bytes(example, "comment")
                    yield Record(path, position, image, label.decode("utf-8", "replace"),
                                 comment.decode("utf-8", "replace") if comment is not None else None)
                position += 1
            index += 1
        except tf.errors.DataLossError:
            index += 1
            _warn(path, index, "%s: record %d is truncated or corrupt; the %d records before it are used, the rest of "
                  "the file is skipped (rewrite it with `aocr dataset`)", path, index, index)
        if readable_counts is not None:
            readable_counts[path] = index


# Records of one kind of unusable label named in full before training; the rest are counted.
NAMED_RECORDS = 5


@dataclass
class LabelScan:
    """What training will read: per file the readable record count, per record its label ids.

    label_ids is int32 [records, max_prediction + 2]: GO, the characters, EOS, then PAD.
    keep marks the records training reads: their label fits the charset and max_prediction, their image
    header is sound, and the hold-out test (if any) did not take them.
    """

    files: list[str]
    readable_counts: list[int]
    label_ids: np.ndarray
    keep: np.ndarray
    too_long: list[str] = field(default_factory=list)
    unknown_chars: Counter = field(default_factory=Counter)
    unknown_records: int = 0
    bad_records: int = 0  # labels with a control character, a byte-order mark or a NUL
    bad_images: int = 0  # images not to decode: unreadable header, or over --max-image-pixels
    held_out: int = 0  # usable records the hold-out test took (for validation); not in keep
    examples: dict[str, list[str]] = field(default_factory=dict)  # kind -> the first NAMED_RECORDS, described

    @property
    def usable(self) -> int:
        """Records to train on."""
        return int(self.keep.sum())

    @property
    def usable_in_all(self) -> int:
        """Records that could be learned from: those to train on and those held out."""
        return self.usable + self.held_out

    def note(self, kind: str, record: Record, what: str) -> None:
        named = self.examples.setdefault(kind, [])
        if len(named) < NAMED_RECORDS:
            named.append(f"record {record.position} ({record.comment or record.source}): {what}")


def encode_label(label: str, params: ModelParams, charset: Charset | None = None) -> np.ndarray | None:
    """GO, ids, EOS, PAD... as int32 [max_prediction + 2]; None if the label cannot be learned."""
    charset = charset or params.char_table
    if charset.unknown_chars(label) or len(charset.normalize(label)) > params.max_prediction:
        return None
    ids = np.full(params.max_prediction + 2, PAD_ID, np.int32)
    chars = charset.encode(label)
    ids[0] = GO_ID
    ids[1:len(chars) + 1] = chars
    ids[len(chars) + 1] = EOS_ID
    return ids


def _why_not(scan: LabelScan, record: Record, charset: Charset) -> None:
    """Count and note why a record's label cannot be learned."""
    bad = find_bad_char(record.label)
    if bad is not None:
        scan.bad_records += 1
        scan.note("bad", record, f"{bad[1]} at character {bad[0]}")
        return
    missing = charset.unknown_chars(record.label)
    if missing:
        scan.unknown_chars.update(missing)
        scan.unknown_records += 1
        scan.note("unknown", record, f"{''.join(sorted(missing))!r} in {record.label[:80]!r}")
    else:
        scan.too_long.append(record.label)
        scan.note("too long", record, f"{len(charset.normalize(record.label))} characters")


# Given each usable record, says whether to hold it out of training (keeping what it needs of it).
HoldOutTest = Callable[[Record], bool]


def _learnable_ids(scan: LabelScan, record: Record, params: ModelParams, charset: Charset,
                   max_pixels: int) -> np.ndarray | None:
    """The record's label ids when training can use it; None, counted and noted in `scan`, when not."""
    ids = encode_label(record.label, params, charset)
    if ids is None:
        _why_not(scan, record, charset)
    elif (problem := check_image_header(record.image, max_pixels)) is not None:
        scan.bad_images += 1
        scan.note("image", record, problem)
        return None
    return ids


def scan_labels(files: list[str], params: ModelParams, max_pixels: int = defaults.MAX_IMAGE_PIXELS,
                hold_out: HoldOutTest | None = None) -> LabelScan:
    """Read every record once and say which ones training can use, and why not the rest.

    A record whose image header is unreadable or declares more than max_pixels pixels is not
    used either: nothing decodes it (aocr.core.images.check_image_header). Usable records that
    `hold_out` takes are counted in held_out and not kept for training."""
    counts: dict[str, int] = {}
    rows: list[np.ndarray] = []
    keep: list[bool] = []
    scan = LabelScan(files, [], np.zeros(0), np.zeros(0))
    charset = params.char_table
    blank = np.zeros(params.max_prediction + 2, np.int32)
    for record in iter_records(files, counts):
        while len(rows) < record.position:  # records skipped for missing features keep their slot
            rows.append(blank)
            keep.append(False)
        ids = _learnable_ids(scan, record, params, charset, max_pixels)
        if ids is not None and hold_out is not None and hold_out(record):
            scan.held_out += 1
            ids = None
        rows.append(blank if ids is None else ids)
        keep.append(ids is not None)
    total = sum(counts.values())
    while len(rows) < total:
        rows.append(blank)
        keep.append(False)
    scan.readable_counts = [counts[f] for f in files]
    scan.label_ids = np.stack(rows) if rows else np.zeros((0, params.max_prediction + 2), np.int32)
    scan.keep = np.array(keep, bool)
    return scan


def report_scan(scan: LabelScan, params: ModelParams) -> None:
    """Log what will be skipped and why, naming the first few records; an AocrError when nothing is left."""
    total = len(scan.keep)

    def first(kind: str) -> str:
        return "; ".join(scan.examples.get(kind, []))

    if scan.too_long:
        longest = max(scan.too_long, key=len)
        log.warning("%d records skipped: label longer than --max-prediction %d (longest: %d characters, %r); "
                    "the first: %s", len(scan.too_long), params.max_prediction, len(longest), longest,
                    first("too long"))
    if scan.unknown_records:
        log.warning("%d records skipped: label characters outside the charset: %r; use --charset auto or a "
                    "charset that has them; the first: %s", scan.unknown_records,
                    "".join(sorted(scan.unknown_chars)), first("unknown"))
    if scan.bad_records:
        log.warning("%d records skipped: label holds a control character, a byte-order mark or a NUL; "
                    "the first: %s", scan.bad_records, first("bad"))
    if scan.bad_images:
        log.warning("%d records skipped: image not to decode; the first: %s", scan.bad_images, first("image"))
    if scan.usable_in_all == 0:
        raise AocrError(f"no usable record in {', '.join(scan.files)} ({total} read)")
    log.info("%d records in %d file(s), %d usable", total, len(scan.files), scan.usable_in_all)
