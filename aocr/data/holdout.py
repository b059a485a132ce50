"""`--validation-split`: a stable share of the training records held out for validation.

A record is held out when a hash of its image bytes falls in the lowest `fraction` of the
hash range, so the same records are held out on every run and after a resume, whatever
the order of the files or the records in them. The records are read once: the hold-out
test runs inside aocr.data.records.scan_labels.
"""

from __future__ import annotations

import dataclasses
import zlib

from aocr.core import defaults
from aocr.core.charset import Charset
from aocr.core.params import ModelParams
from aocr.data.records import LabelScan, Record, scan_labels

HASH_RANGE = 2**32


def is_held_out(image: bytes, fraction: float) -> bool:
    return zlib.crc32(image) < fraction * HASH_RANGE


class HoldOut:
    """The hold-out test for scan_labels: takes a record when is_held_out, keeping the first `limit` it
    takes as (image bytes, normalized label) validation samples."""

    def __init__(self, fraction: float, charset: Charset, limit: int = defaults.VALIDATION_LIMIT) -> None:
        self.fraction, self.charset, self.limit = fraction, charset, limit
        self.samples: list[tuple[bytes, str]] = []

    def __call__(self, record: Record) -> bool:
        if not is_held_out(record.image, self.fraction):
            return False
        if len(self.samples) < self.limit:
            self.samples.append((record.image, self.charset.normalize(record.label)))
        return True


@dataclasses.dataclass
class Split:
    training: LabelScan  # the scan without the held-out records; training.held_out counts them
    validation: list[tuple[bytes, str]]  # (image bytes, normalized label) of the held-out records, up to the limit

    @property
    def held_out(self) -> int:
        """Records held out (those over the limit are still kept out of training)."""
        return self.training.held_out


def split_scan(files: list[str], params: ModelParams, fraction: float,
               max_pixels: int = defaults.MAX_IMAGE_PIXELS) -> Split:
    """Scan `files` (aocr.data.records.scan_labels) in one pass, holding out `fraction` of the usable records."""
    if not fraction:
        return Split(scan_labels(files, params, max_pixels), [])
    hold_out = HoldOut(fraction, params.char_table)
    return Split(scan_labels(files, params, max_pixels, hold_out), hold_out.samples)
