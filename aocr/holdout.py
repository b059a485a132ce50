"""`--validation-split`: a stable share of the training records held out for validation.

A record is held out when a hash of its image bytes falls in the lowest `fraction` of the
hash range, so the same records are held out on every run and after a resume, whatever
the order of the files or the records in them.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from aocr.data.records import LabelScan, iter_records
from aocr.params import ModelParams
from aocr.validation import VALIDATION_LIMIT

HASH_RANGE = 2**32


def is_held_out(image: bytes, fraction: float) -> bool:
    return zlib.crc32(image) < fraction * HASH_RANGE


@dataclasses.dataclass
class Split:
    training: LabelScan  # the scan with the held-out records no longer kept
    validation: list[tuple[bytes, str]]  # (image bytes, normalized label) of the held-out records, up to the limit
    held_out: int  # records held out (those over the limit are still kept out of training)


def split_scan(scan: LabelScan, params: ModelParams, fraction: float) -> Split:
    """Hold out `fraction` of the usable records of `scan`, chosen by is_held_out."""
    keep = scan.keep.copy()
    samples: list[tuple[bytes, str]] = []
    held_out = 0
    charset = params.char_table
    for record in iter_records(scan.files):
        if record.position < len(keep) and keep[record.position] and is_held_out(record.image, fraction):
            keep[record.position] = False
            held_out += 1
            if len(samples) < VALIDATION_LIMIT:
                samples.append((record.image, charset.normalize(record.label)))
    return Split(dataclasses.replace(scan, keep=np.asarray(keep)), samples, held_out)
