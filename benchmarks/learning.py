"""Accuracy against training time: one training run, its checkpoints scored at time budgets, and the
step at which the attention aligned (the first checkpoint with perplexity below 2)."""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from common import OUT

from aocr.core import defaults
from aocr.core.params import ModelParams
from aocr.inference.evaluate import evaluate
from aocr.inference.recognizer import Recognizer
from aocr.training.trainer import TrainConfig, train

ALIGNED_PERPLEXITY = 2.0
PERPLEXITY_LINE = re.compile(r"step (\d+): loss [\d.]+, perplexity ([\d.]+|inf)")


@dataclass
class LearningRun:
    name: str
    train_records: Path
    test_records: Path
    params: ModelParams
    batch_size: int
    augment: str = defaults.AUGMENT


class _PerplexityLog(logging.Handler):
    """Collects (step, perplexity) from the training log lines."""

    def __init__(self) -> None:
        super().__init__()
        self.points: list[tuple[int, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = PERPLEXITY_LINE.search(record.getMessage())
        if match:
            self.points.append((int(match.group(1)), float(match.group(2))))


def _keep_at_budgets(model_dir: Path, minutes: list[float]):
    """A checkpoint callback that copies, for each budget, the last checkpoint saved within it
    (the rolling deletion would remove it before it is scored)."""
    kept: dict[float, tuple[int, float, Path]] = {}

    def on_checkpoint(step: int, seconds: float, path: str) -> None:
        for budget in minutes:
            if seconds <= 60 * budget + 1:
                slot = model_dir / f"budget-{budget:g}"
                shutil.rmtree(slot, ignore_errors=True)
                slot.mkdir(parents=True)
                for part in Path(path).parent.glob(Path(path).name + ".*"):
                    shutil.copy(part, slot / part.name)
                kept[budget] = (step, seconds, slot / Path(path).name)
                break

    return on_checkpoint, kept


def learning_curve(run: LearningRun, minutes: list[float]) -> dict:
    """Train for max(minutes) from scratch at the default flags but batch size and augmentation, then
    score the last checkpoint within each budget on the test records."""
    model_dir = OUT / "learning" / run.name
    shutil.rmtree(model_dir, ignore_errors=True)
    on_checkpoint, kept = _keep_at_budgets(model_dir / "curve", minutes)
    perplexities = _PerplexityLog()
    aocr_log = logging.getLogger("aocr")
    saved_level = aocr_log.level
    aocr_log.setLevel(logging.INFO)  # the perplexity lines are INFO; the benchmark's own output stays at WARNING
    aocr_log.addHandler(perplexities)
    try:
        config = TrainConfig(dataset=str(run.train_records), model_dir=str(model_dir), batch_size=run.batch_size,
                             resume=False, seed=0, max_minutes=max(minutes), augment=run.augment)
        train(config, run.params, on_checkpoint=on_checkpoint)
    finally:
        aocr_log.removeHandler(perplexities)
        aocr_log.setLevel(saved_level)
    curve = []
    for budget in sorted(kept):
        step, seconds, path = kept[budget]
        recognizer = Recognizer.load(str(model_dir), run.params, checkpoint=str(path))
        try:
            accuracy = evaluate(recognizer, str(run.test_records), 64)
        finally:
            recognizer.close()
        curve.append({"minutes": budget, "step": step, "train_seconds": round(seconds, 1),
                      "word_accuracy": accuracy.word_accuracy, "character_accuracy": accuracy.character_accuracy})
        print(f"{run.name}: after {seconds / 60:.1f} min (step {step}): {accuracy.summary()}", flush=True)
    aligned = next((step for step, perplexity in perplexities.points if perplexity < ALIGNED_PERPLEXITY), None)
    return {"batch_size": run.batch_size, "augment": run.augment, "curve": curve, "aligned_at_step": aligned,
            "perplexity": perplexities.points, "model_dir": str(model_dir)}
