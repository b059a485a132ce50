"""Text <-> label ids. Ids 0, 1, 2 are PAD, GO and EOS; characters start at 3."""

from __future__ import annotations

from dataclasses import dataclass

PAD_ID = 0
GO_ID = 1
EOS_ID = 2
FIRST_CHAR_ID = 3


@dataclass(frozen=True)
class Charset:
    """The characters a model can read, and whether labels are upper-cased first."""

    chars: str
    force_uppercase: bool = True

    def __post_init__(self) -> None:
        if not self.chars:
            raise ValueError("the charset is empty")
        if len(set(self.chars)) != len(self.chars):
            raise ValueError(f"the charset repeats characters: {self.chars!r}")

    @property
    def num_classes(self) -> int:
        """Size of the decoder's output layer: PAD, GO, EOS and every character."""
        return FIRST_CHAR_ID + len(self.chars)

    def normalize(self, label: str) -> str:
        """The label as the model is trained on it (upper-cased unless told otherwise)."""
        return label.upper() if self.force_uppercase else label

    def unknown_chars(self, label: str) -> set[str]:
        """Characters of the normalized label that this charset cannot produce."""
        known = set(self.chars)
        return {c for c in self.normalize(label) if c not in known}

    def encode(self, label: str) -> list[int]:
        """Ids of the normalized label's characters, without GO or EOS.

        Raises KeyError on a character outside the charset.
        """
        index = {c: i + FIRST_CHAR_ID for i, c in enumerate(self.chars)}
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
        """One string per id, '' for PAD, GO and EOS: the graph's id -> text lookup."""
        return ["", "", ""] + list(self.chars)
