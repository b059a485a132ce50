"""Accuracy figures as the original aocr computes them."""

from __future__ import annotations

from dataclasses import dataclass, field

from rapidfuzz.distance import Levenshtein

from aocr.model.lexicon import OUTSIDE_LEXICON_RATIO


def character_error(prediction: str, label: str) -> float:
    """Edit distance over the label's length, capped at 1 (an empty label: 0 if the prediction is empty too)."""
    if not label:
        return 0.0 if not prediction else 1.0
    return min(1.0, Levenshtein.distance(prediction, label) / len(label))


@dataclass
class Accuracy:
    images: int = 0
    correct_words: int = 0
    character_errors: float = 0.0

    def add(self, prediction: str, label: str) -> bool:
        """Count one image; returns whether the whole word is right."""
        self.images += 1
        correct = prediction == label
        self.correct_words += correct
        self.character_errors += character_error(prediction, label)
        return correct

    @property
    def word_accuracy(self) -> float:
        return self.correct_words / self.images if self.images else 0.0

    @property
    def character_accuracy(self) -> float:
        return 1.0 - self.character_errors / self.images if self.images else 0.0

    def summary(self) -> str:
        return (f"word accuracy: {100 * self.word_accuracy:.2f}%, "
                f"character accuracy: {100 * self.character_accuracy:.2f}% ({self.images} images)")


COVERAGE_THRESHOLDS = (0.5, 0.9, 0.99)


@dataclass
class Coverage:
    """How useful the answers' probability is as a confidence: for each threshold p, the share of
    images answered with probability >= p, and the word accuracy among those (what a user needs to
    pick the threshold above which answers are trusted)."""

    thresholds: tuple[float, ...] = COVERAGE_THRESHOLDS
    images: int = 0
    kept: dict[float, int] = field(default_factory=dict)  # threshold -> images at or above it
    correct: dict[float, int] = field(default_factory=dict)  # threshold -> right words among them
    flags: dict[bool, list[int]] = field(default_factory=dict)  # with --lexicon: outside it? -> [images, right]

    def add(self, probability: float, correct: bool, outside_lexicon: bool | None = None) -> None:
        """Count one image (an unreadable one as probability 0); outside_lexicon: its --lexicon flag, if any."""
        self.images += 1
        if outside_lexicon is not None:
            tally = self.flags.setdefault(outside_lexicon, [0, 0])
            tally[0] += 1
            tally[1] += correct
        for threshold in self.thresholds:
            if probability >= threshold:
                self.kept[threshold] = self.kept.get(threshold, 0) + 1
                self.correct[threshold] = self.correct.get(threshold, 0) + correct

    def share(self, threshold: float) -> float:
        """The share of images answered with probability >= threshold."""
        return self.kept.get(threshold, 0) / self.images if self.images else 0.0

    def accuracy(self, threshold: float) -> float | None:
        """The word accuracy among the images answered with probability >= threshold (None: there are none)."""
        kept = self.kept.get(threshold, 0)
        return self.correct.get(threshold, 0) / kept if kept else None

    def summary_lines(self) -> list[str]:
        """One line per threshold, as `aocr test` logs them."""
        lines = []
        for threshold in self.thresholds:
            accuracy = self.accuracy(threshold)
            among = f"{100 * accuracy:.2f}%" if accuracy is not None else "n/a"
            lines.append(f"probability >= {threshold:g}: {100 * self.share(threshold):.2f}% of images "
                         f"({self.kept.get(threshold, 0)} of {self.images}), word accuracy among them {among}")
        if self.flags:
            lines.append(self._lexicon_line())
        return lines

    def _lexicon_line(self) -> str:
        flagged, right = self.flags.get(True, [0, 0])
        rest, rest_right = self.flags.get(False, [0, 0])

        def among(images: int, correct: int) -> str:
            return f"{100 * correct / images:.2f}%" if images else "n/a"

        return (f"outside the lexicon (the answer under 1/{round(1 / OUTSIDE_LEXICON_RATIO)} as likely as the reading "
                f"without it): {flagged} of {flagged + rest} images, word accuracy among them {among(flagged, right)}, "
                f"among the others {among(rest, rest_right)}")
