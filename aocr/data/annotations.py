"""Annotation files: one 'path label' line per image."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aocr.core.charset import find_bad_char
from aocr.core.errors import AocrError
from aocr.core.files import read_bytes

# The path is the first run of non-space characters; the label is everything after the
# whitespace that follows it, so it may be empty ("img.png ") or hold spaces.
_LINE = re.compile(r"(\S+)(?:\s+(.*))?\Z", re.DOTALL)
# Only these end a line; any other separator (form feed, U+2028...) stays in it and is reported.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

MALFORMED = "malformed"
BAD_CHARACTER = "bad character"


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
    kind: str = MALFORMED  # or BAD_CHARACTER


def _check_characters(number: int, line: str, path: str, label: str) -> BadLine | None:
    """A BadLine when the path or the label holds a control character, a byte-order mark or a NUL."""
    for part, text in (("path", path), ("label", label)):
        bad = find_bad_char(text)
        if bad is not None:
            return BadLine(number, line, f"the {part} holds {bad[1]} at character {bad[0]}", BAD_CHARACTER)
    return None


def read_utf8(path: str, flag: str = "") -> str:
    """A UTF-8 text file, without the byte-order mark at its start; a missing, unreadable or
    non-UTF-8 file is an AocrError naming it (after `flag`, the option that named it, if any)."""
    raw = read_bytes(path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line_number = raw[: e.start].count(b"\n") + 1
        name = f"{flag} {path}" if flag else path
        raise AocrError(f"{name}, line {line_number}: not UTF-8 text; save the file as UTF-8") from None


def parse_annotations(path: str) -> tuple[list[Annotation], list[BadLine], int]:
    """Read an annotation file: (good lines, bad lines, count of blank lines).

    Accepts LF, CRLF and CR line endings and a UTF-8 byte order mark at the start. A line
    with a path and no whitespace after it has no label separator, and one whose path or
    label holds a control character, a byte-order mark or a NUL cannot be learned: both are
    reported, not guessed at.
    """
    text = read_utf8(path)
    good: list[Annotation] = []
    bad: list[BadLine] = []
    blank = 0
    lines = _LINE_BREAK.split(text)
    if lines and not lines[-1]:
        lines.pop()  # the last line's line break
    for number, line in enumerate(lines, start=1):
        stripped = line.lstrip()
        if not stripped.strip():
            blank += 1
            continue
        match = _LINE.match(stripped)
        if match is None or match.group(2) is None:
            bad.append(BadLine(number, line, "no label: expected 'path label' (a space or tab after the path)"))
            continue
        bad_chars = _check_characters(number, line, match.group(1), match.group(2))
        if bad_chars is not None:
            bad.append(bad_chars)
            continue
        good.append(Annotation(number, match.group(1), match.group(2)))
    return good, bad, blank
