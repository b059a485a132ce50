"""Accuracy figures as the original aocr computes them."""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein


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
