"""Checkpoints during training: the rolling last few, params.json, validation, and the best one kept apart.

The best checkpoint (by validation word accuracy, ties to character accuracy) lives in
MODEL_DIR/best/ with its own `checkpoint` state file, so the rolling deletion of old
checkpoints never touches it; test, predict and export load it by default.

Each run also records its training settings in MODEL_DIR/training.json (beside params.json, which holds
the model's shape and never changes); a resumed run compares its own with them and says what changed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from os.path import basename
from typing import Any, TypeVar

import tensorflow as tf

from aocr.core import params as model_params
from aocr.core.files import join, link_or_copy, read_bytes, write_bytes_atomic
from aocr.core.options import FLAG_OF
from aocr.core.params import ModelParams
from aocr.core.session import BEST_SCORE_FILE, best_dir
from aocr.inference.metrics import Accuracy
from aocr.training.validation import Validation

tf1 = tf.compat.v1
log = logging.getLogger("aocr")

TRAINING_FILE = "training.json"

# The settings training.json records, by the flag that sets each (aocr.training.trainer.TrainConfig.run_settings).
SETTING_FLAGS = {setting: FLAG_OF[field] for setting, field in (
    ("augment", "augment"), ("validation_split", "validation_split"), ("validation", "validation"),
    ("batch_size", "batch_size"), ("optimizer", "optimizer"), ("initial_learning_rate", "learning_rate"))}

Parsed = TypeVar("Parsed")

# Called after each checkpoint with (global step, seconds of training so far, checkpoint path).
CheckpointCallback = Callable[[int, float, str], None]


@dataclass
class BestScore:
    step: int
    word_accuracy: float
    character_accuracy: float
    decoder: str | None = None  # the reading that scored these (None: written before the heads were compared)

    def compare(self, accuracy: Accuracy) -> int:
        """1 when `accuracy` is better (more words right, or as many and more characters), 0 when it ties, -1."""
        new, old = (accuracy.word_accuracy, accuracy.character_accuracy), (self.word_accuracy, self.character_accuracy)
        return (new > old) - (new < old)


def _load_json(path: str, parse: Callable[[Any], Parsed], if_unreadable: str) -> Parsed | None:
    """parse(the JSON in `path`); None when there is no such file, or (with a warning) when it does not parse."""
    if not tf.io.gfile.exists(path):
        return None
    try:
        return parse(json.loads(read_bytes(path).decode("utf-8")))
    except (ValueError, TypeError):
        log.warning("%s is unreadable; %s", path, if_unreadable)
        return None


def load_best_score(model_dir: str) -> BestScore | None:
    return _load_json(join(best_dir(model_dir), BEST_SCORE_FILE), lambda stored: BestScore(**stored),
                      "the next validated checkpoint becomes the best")


def _settings(stored: Any) -> dict[str, Any]:
    if not isinstance(stored, dict):
        raise TypeError("not a JSON object")
    return stored


def _shown(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def note_changed_settings(model_dir: str, settings: dict[str, Any]) -> None:
    """Log which of a resumed run's `settings` differ from those its model's last run recorded, as
    "resuming with --augment strong (was light)"; a model dir without training.json says nothing."""
    recorded = _load_json(join(model_dir, TRAINING_FILE), _settings, "this run's settings are not compared to the "
                          "last run's")
    if recorded is None:
        return
    changes = [f"{flag} {_shown(settings.get(name))} (was {_shown(recorded[name])})"
               for name, flag in SETTING_FLAGS.items() if name in recorded and recorded[name] != settings.get(name)]
    if changes:
        log.info("resuming with %s", ", ".join(changes))


class Checkpointer:
    """Saves the training session's variables; with validation, scores each checkpoint, keeps the best
    and counts the checkpoints since the last improvement (for --patience)."""

    def __init__(self, model_dir: str, params: ModelParams, saver: tf1.train.Saver,
                 validation: Validation | None, writer: tf1.summary.FileWriter | None,
                 on_checkpoint: CheckpointCallback | None = None, settings: dict[str, Any] | None = None) -> None:
        """settings: this run's training settings, recorded in training.json at its first save."""
        self.model_dir, self.params, self.settings = model_dir, params, settings
        self.saver = saver
        self.validation, self.writer, self.on_checkpoint = validation, writer, on_checkpoint
        self.best = load_best_score(model_dir)
        self.since_best = 0
        self.saved_step: int | None = None
        self._model_files_written = False

    def save(self, session: tf1.Session, step: int, elapsed: float) -> str:
        """Save at `step`; validate, and keep it apart when it is the best so far."""
        if not self._model_files_written:
            self._write_model_files()
        path = self.saver.save(session, join(self.model_dir, "model.ckpt"), global_step=step, write_meta_graph=False)
        self.saved_step = step
        log.info("saved %s", path)
        if self.validation is not None:
            self._judge(path, step, *self.validation.run(self.writer, step))
        if self.on_checkpoint is not None:
            self.on_checkpoint(step, elapsed, path)
        return path

    def _write_model_files(self) -> None:
        """params.json when it is missing or differs, and this run's training.json."""
        if model_params.load(self.model_dir) != self.params:
            model_params.save(self.model_dir, self.params)
        if self.settings is not None:
            write_bytes_atomic(join(self.model_dir, TRAINING_FILE),
                               json.dumps(self.settings, indent=2, sort_keys=True).encode("utf-8"))
        self._model_files_written = True

    def _judge(self, path: str, step: int, decoder: str, accuracy: Accuracy) -> None:
        """Keep the checkpoint saved at `path` (step `step`) as the best when it is better, or as good and newer
        (it has trained longer); only a better one resets the count of checkpoints without improvement."""
        verdict = 1 if self.best is None else self.best.compare(accuracy)
        self.since_best = 0 if verdict > 0 else self.since_best + 1
        if verdict < 0 or (self.best is not None and self.best.step == step):
            return
        self.best = BestScore(step, accuracy.word_accuracy, accuracy.character_accuracy, decoder)
        directory = best_dir(self.model_dir)
        kept = link_checkpoint(path, directory)
        write_bytes_atomic(join(directory, BEST_SCORE_FILE), json.dumps(self.best.__dict__).encode("utf-8"))
        point_at_checkpoint(kept, directory)
        log.info("step %d is the best so far (read by %s): kept in %s", step, decoder, directory)


def link_checkpoint(path: str, directory: str) -> str:
    """The files of the checkpoint saved at `path` linked into `directory` (aocr.core.files.link_or_copy: the
    session is not saved twice); returns the checkpoint's path there."""
    tf.io.gfile.makedirs(directory)
    for source in tf.io.gfile.glob(f"{path}.*"):
        link_or_copy(source, join(directory, basename(source)))
    return join(directory, basename(path))


def point_at_checkpoint(kept: str, directory: str) -> None:
    """Make the checkpoint `kept` the only one of `directory`: its `checkpoint` file names it, the others go."""
    tf1.train.update_checkpoint_state(directory, kept, all_model_checkpoint_paths=[kept])
    for old in tf.io.gfile.glob(join(directory, "model.ckpt-*")):
        if not old.startswith(f"{kept}."):
            tf.io.gfile.remove(old)
