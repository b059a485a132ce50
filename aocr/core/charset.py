"""Text <-> label ids. Ids 0, 1, 2 are PAD, GO and EOS; characters start at 3.

A character is one Unicode code point of the label after NFC normalization (so a letter
with an accent is one character whether the label spelled it precomposed or not). Any
script works: the ids are positions in the charset, and the exported graph's id -> text
table holds each character as its UTF-8 bytes.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

PAD_ID = 0
GO_ID = 1
EOS_ID = 2
FIRST_CHAR_ID = 3

# Characters no label may hold: besides the control characters (category Cc, NUL and tab
# included) and the line and paragraph separators, these.
_NAMED_BAD = {
    "\x00": "a NUL",
    "\ufeff": "a byte-order mark",
    "\ufffd": "a replacement character (text that was not valid UTF-8)",
}


def normalize_label(label: str, force_uppercase: bool = True) -> str:
    """The label as a model is trained on it: upper-cased unless told otherwise, then Unicode NFC."""
    return unicodedata.normalize("NFC", label.upper() if force_uppercase else label)


def uppercase_by_default(chars: str | None) -> bool:
    """The case rule when no flag sets it: labels are upper-cased only for a charset that holds no lower-case
    letter (the original aocr's digits and A-Z). An auto charset (None), made from the labels as written,
    keeps their case, so a model of document lines answers in the case of its ground truth."""
    return chars is not None and all(c == c.upper() for c in chars)


def bad_char_name(char: str) -> str | None:
    """What is wrong with a character no label may hold (e.g. 'a NUL (U+0000)'); None for a good one."""
    code = f"U+{ord(char):04X}"
    if char in _NAMED_BAD:
        return f"{_NAMED_BAD[char]} ({code})"
    category = unicodedata.category(char)
    if category == "Cc":
        return f"a control character ({code})"
    if category in ("Zl", "Zp", "Cs"):
        return f"a {'surrogate' if category == 'Cs' else 'line or paragraph separator'} ({code})"
    return None


def find_bad_char(text: str) -> tuple[int, str] | None:
    """(1-based position, description) of the first character no label may hold, or None."""
    for position, char in enumerate(text, start=1):
        name = bad_char_name(char)
        if name is not None:
            return position, name
    return None


def charset_from_text(text: str, source: str) -> tuple[str, str]:
    """The charset a charset file's text defines, and which rule read it, in words.

    One character per line when every non-empty line is one character (after NFC; a line
    holding one space is the space), in file order; otherwise the distinct characters of
    the whole text, line breaks and control characters left out, by code point. Raises
    ValueError (naming `source`) when nothing but white space is left, or when a line of
    its own is a control character.
    """
    lines = [unicodedata.normalize("NFC", line.removesuffix("\r")) for line in text.split("\n")]
    entries = [line for line in lines if line]
    if entries and all(len(line) == 1 for line in entries):
        bad = [(n, line) for n, line in enumerate(lines, start=1) if line and bad_char_name(line)]
        if bad:
            number, line = bad[0]
            raise ValueError(f"{source}, line {number}: {bad_char_name(line)} cannot be in a charset")
        chars = "".join(dict.fromkeys(entries))
        return chars, f"one character per line, {len(chars)} characters in file order"
    chars = "".join(sorted({c for c in unicodedata.normalize("NFC", text) if bad_char_name(c) is None}))
    if not chars.strip():
        raise ValueError(f"{source}: empty charset file (one character per line, or a text of the characters)")
    return chars, (f"not one character per line, so the text's {len(chars)} distinct characters "
                   "(line breaks and control characters left out), by code point")


@functools.lru_cache(maxsize=16)
def _index(chars: str) -> dict[str, int]:
    """Character -> id, built once per charset (labels are encoded by the million)."""
    return {c: i + FIRST_CHAR_ID for i, c in enumerate(chars)}


@dataclass(frozen=True)
class Charset:
    """The characters a model can read, and whether labels are upper-cased first."""

    chars: str
    force_uppercase: bool = True

    def __post_init__(self) -> None:
        if not self.chars:
            raise ValueError("the charset is empty")
        if len(_index(self.chars)) != len(self.chars):
            repeated = sorted({c for c in self.chars if self.chars.count(c) > 1})
            raise ValueError(f"the charset repeats characters: {''.join(repeated)!r}")

    @property
    def num_classes(self) -> int:
        """Size of the decoder's output layer: PAD, GO, EOS and every character."""
        return FIRST_CHAR_ID + len(self.chars)

    def normalize(self, label: str) -> str:
        """The label as the model is trained on it (NFC, upper-cased unless told otherwise)."""
        return normalize_label(label, self.force_uppercase)

    def unknown_chars(self, label: str) -> set[str]:
        """Characters of the normalized label that this charset cannot produce."""
        known = _index(self.chars)
        return {c for c in self.normalize(label) if c not in known}

    def unreachable_chars(self) -> str:
        """Characters of the charset that no normalized label holds (lower case when labels are upper-cased)."""
        return "".join(c for c in self.chars if self.normalize(c) != c)

    def encode(self, label: str) -> list[int]:
        """Ids of the normalized label's characters, without GO or EOS.

        Raises KeyError on a character outside the charset.
        """
        index = _index(self.chars)
        return [index[c] for c in self.normalize(label)]

    def decode(self, ids: list[int]) -> str:
        """Text of ids up to the first EOS; PAD and GO are dropped."""
        text = []
        for i in ids:
            if i == EOS_ID:
                break
            if i >= FIRST_CHAR_ID:
                text.append(self.chars[i - FIRST_CHAR_ID])
        return "".join(text)

    def id_table(self) -> list[str]:
        """One string per id, '' for PAD, GO and EOS: the graph's id -> text lookup.

        tf.constant stores each as its UTF-8 bytes, so joining a row's strings gives the
        UTF-8 text of any script.
        """
        return ["", "", ""] + list(self.chars)
