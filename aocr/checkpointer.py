"""Checkpoints during training: the rolling last few, params.json, validation, and the best one kept apart.

The best checkpoint (by validation word accuracy, ties to character accuracy) lives in
MODEL_DIR/best/ with its own `checkpoint` state file, so the rolling deletion of old
checkpoints never touches it; test, predict and export load it by default.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

from aocr import params as model_params
from aocr.fileio import join, read_bytes, write_bytes_atomic
from aocr.metrics import Accuracy
from aocr.params import ModelParams
from aocr.session import best_dir
from aocr.validation import Validation

tf1 = tf.compat.v1
log = logging.getLogger("aocr")

BEST_SCORE_FILE = "best.json"

# Called after each checkpoint with (global step, seconds of training so far, checkpoint path).
CheckpointCallback = Callable[[int, float, str], None]


@dataclass
class BestScore:
    step: int
    word_accuracy: float
    character_accuracy: float

    def compare(self, accuracy: Accuracy) -> int:
        """1 when `accuracy` is better (more words right, or as many and more characters), 0 when it ties, -1."""
        new, old = (accuracy.word_accuracy, accuracy.character_accuracy), (self.word_accuracy, self.character_accuracy)
        return (new > old) - (new < old)


def load_best_score(model_dir: str) -> BestScore | None:
    path = join(best_dir(model_dir), BEST_SCORE_FILE)
    if not tf.io.gfile.exists(path):
        return None
    try:
        return BestScore(**json.loads(read_bytes(path).decode("utf-8")))
    except (ValueError, TypeError):
        log.warning("%s is unreadable; the next validated checkpoint becomes the best", path)
        return None


class Checkpointer:
    """Saves the training session's variables; with validation, scores each checkpoint, keeps the best
    and counts the checkpoints since the last improvement (for --patience)."""

    def __init__(self, model_dir: str, params: ModelParams, savers: tuple[tf1.train.Saver, tf1.train.Saver],
                 validation: Validation | None, writer: tf1.summary.FileWriter | None,
                 on_checkpoint: CheckpointCallback | None = None) -> None:
        self.model_dir, self.params = model_dir, params
        self.saver, self.best_saver = savers
        self.validation, self.writer, self.on_checkpoint = validation, writer, on_checkpoint
        self.best = load_best_score(model_dir)
        self.since_best = 0
        self.saved_step: int | None = None
        self._params_written = False

    def save(self, session: tf1.Session, step: int, elapsed: float) -> str:
        """Save at `step`; validate, and keep it apart when it is the best so far."""
        if not self._params_written:
            if model_params.load(self.model_dir) != self.params:
                model_params.save(self.model_dir, self.params)
            self._params_written = True
        path = self.saver.save(session, join(self.model_dir, "model.ckpt"), global_step=step, write_meta_graph=False)
        self.saved_step = step
        log.info("saved %s", path)
        if self.validation is not None:
            self._judge(session, step, self.validation.run(self.writer, step))
        if self.on_checkpoint is not None:
            self.on_checkpoint(step, elapsed, path)
        return path

    def _judge(self, session: tf1.Session, step: int, accuracy: Accuracy) -> None:
        """Keep the checkpoint at `step` as the best when it is better, or as good and newer (it has trained
        longer); only a better one resets the count of checkpoints without improvement."""
        verdict = 1 if self.best is None else self.best.compare(accuracy)
        self.since_best = 0 if verdict > 0 else self.since_best + 1
        if verdict < 0 or (self.best is not None and self.best.step == step):
            return
        self.best = BestScore(step, accuracy.word_accuracy, accuracy.character_accuracy)
        directory = best_dir(self.model_dir)
        tf.io.gfile.makedirs(directory)
        self.best_saver.save(session, join(directory, "model.ckpt"), global_step=step, write_meta_graph=False)
        write_bytes_atomic(join(directory, BEST_SCORE_FILE), json.dumps(self.best.__dict__).encode("utf-8"))
        log.info("step %d is the best so far: kept in %s", step, directory)
