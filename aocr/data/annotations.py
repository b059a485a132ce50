"""Annotation files: one 'path label' line per image."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aocr.errors import AocrError
from aocr.fileio import read_bytes

# The path is the first run of non-space characters; the label is everything after the
# whitespace that follows it, so it may be empty ("img.png ") or hold spaces.
_LINE = re.compile(r"(\S+)(?:\s+(.*))?\Z", re.DOTALL)


@dataclass(frozen=True)
class Annotation:
    line_number: int
    path: str
    label: str


@dataclass(frozen=True)
class BadLine:
    line_number: int
    text: str
    reason: str


def parse_annotations(path: str) -> tuple[list[Annotation], list[BadLine], int]:
    """Read an annotation file: (good lines, malformed lines, count of blank lines).

    Accepts CRLF line endings and a UTF-8 byte order mark. A line with a path and no
    whitespace after it has no label separator and is reported, not guessed at.
    """
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line_number = raw[: e.start].count(b"\n") + 1
        raise AocrError(f"{path}, line {line_number}: not UTF-8 text; save the file as UTF-8") from None
    good: list[Annotation] = []
    bad: list[BadLine] = []
    blank = 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip()
        if not stripped.strip():
            blank += 1
            continue
        match = _LINE.match(stripped)
        if match is None or match.group(2) is None:
            bad.append(BadLine(number, line, "no label: expected 'path label' (a space or tab after the path)"))
            continue
        good.append(Annotation(number, match.group(1), match.group(2)))
    return good, bad, blank
