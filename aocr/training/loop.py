"""The training loop: run steps until done, log and checkpoint at intervals, stop on request."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import tensorflow as tf

from aocr.core.errors import AocrError
from aocr.core.progress import Progress
from aocr.core.signals import StopRequest
from aocr.model.optimize import rate_scale, warmup_scale
from aocr.training.checkpoints import Checkpointer
from aocr.training.graph import TrainingGraph
from aocr.training.strategy import Strategy
from aocr.training.summaries import write_scalars

tf1 = tf.compat.v1
log = logging.getLogger("aocr")


class IntervalStats:
    """Means of the training figures between two checkpoints."""

    def __init__(self) -> None:
        self.loss = self.sequence_loss = 0.0
        self.images = self.steps = self.skipped = 0
        self.started = time.monotonic()

    def add(self, loss: float, sequence_loss: float, images: int, gradient_norm: float) -> None:
        """One step's figures; a step whose loss or gradient was not finite (and so changed nothing) is
        counted apart and left out of the means."""
        self.images += images
        if not all(map(math.isfinite, (loss, sequence_loss, gradient_norm))):
            self.skipped += 1
            return
        self.loss += loss
        self.sequence_loss += sequence_loss
        self.steps += 1

    def figures(self) -> dict[str, float]:
        seconds = max(time.monotonic() - self.started, 1e-9)
        steps = max(self.steps, 1)
        sequence_loss = self.sequence_loss / steps
        return {"loss": self.loss / steps, "sequence_loss": sequence_loss,
                "perplexity": math.exp(sequence_loss) if sequence_loss < 300 else float("inf"),
                "seconds_per_step": seconds / steps, "images_per_second": self.images / seconds}


@dataclass
class Limits:
    total_steps: int  # stop when the global step reaches this
    steps_per_checkpoint: int
    max_seconds: float | None = None  # stop (and save) after this much training time
    patience: int | None = None  # stop after this many validated checkpoints without a better one
    start_step: int = 0  # the global step this run started from
    warmup_steps: int = 0  # the rate rises linearly over this run's first steps
    notices: dict[int, str] = field(default_factory=dict)  # global step -> what the log says when it is reached

    def budget_used(self, step: int, elapsed: float) -> float:
        """The share of this run's budget spent: of its steps, or of its time when that runs out first."""
        used = (step - self.start_step) / max(self.total_steps - self.start_step, 1)
        return used if self.max_seconds is None else max(used, elapsed / self.max_seconds)


class TrainingLoop:
    """Runs the steps of an open training session; only the chief logs figures and checkpoints."""

    def __init__(self, training: TrainingGraph, strategy: Strategy, session: object, raw_session: tf1.Session,
                 checkpointer: Checkpointer | None, limits: Limits) -> None:
        self.training, self.strategy = training, strategy
        self.session, self.raw_session = session, raw_session
        self.checkpointer, self.limits = checkpointer, limits
        self.own_steps = 0

    def run(self, step: int) -> int:
        """Train from global step `step`; returns the step reached. Saves before returning (chief)."""
        progress = Progress("train", total=self.limits.total_steps, log_every=0, initial=step)
        failure = None
        with StopRequest() as stop:  # the last save too: a signal during it asks again, which stops at once
            try:
                step, failure = self._steps(step, progress, stop)
            finally:
                progress.close()
                if self.checkpointer is not None and self.checkpointer.saved_step != step:
                    self.checkpointer.save(self.raw_session, step, progress.elapsed())
        if failure:
            raise AocrError(failure)
        return step

    def _done(self, step: int, progress: Progress, stop: StopRequest) -> bool:
        limits = self.limits
        if stop.requested or step >= limits.total_steps:
            return True
        if limits.max_seconds is not None and progress.elapsed() >= limits.max_seconds:
            log.info("--max-minutes reached at step %d", step)
            return True
        checkpointer = self.checkpointer
        if limits.patience is not None and checkpointer is not None and checkpointer.since_best >= limits.patience:
            log.info("no better validation score in %d checkpoints: stopping early (--patience)", limits.patience)
            return True
        return False

    def _steps(self, step: int, progress: Progress, stop: StopRequest) -> tuple[int, str | None]:
        model, ops = self.training.model, self.training.ops
        fetches = [model.loss, model.sequence_loss, ops.gradient_norm, self.training.images_in_batch,
                   self.training.learning_rate, ops.step_after]
        stats = IntervalStats()
        while not self._done(step, progress, stop):
            if (failure := self.strategy.lost_peer()) is not None:
                return step, failure
            try:
                scale = rate_scale(self.limits.budget_used(step, progress.elapsed())) * \
                    warmup_scale(step - self.limits.start_step, self.limits.warmup_steps)
                loss, sequence_loss, norm, images, rate, step_after = self.session.run(
                    fetches, {self.training.learning_rate_scale: scale}, options=self.strategy.run_options)
            except tf.errors.OutOfRangeError:
                break
            except tf.errors.OpError as error:
                failure = self.strategy.step_failure(error)
                if failure is None:
                    raise
                return step, failure
            before, step = step, int(step_after)
            self.own_steps += 1
            stats.add(loss, sequence_loss, images, norm)
            progress.update(step - before, loss=f"{loss:.3f}")
            for due in (due for due in self.limits.notices if before < due <= step):
                log.info("step %d: %s", due, self.limits.notices[due])
            if step // self.limits.steps_per_checkpoint > before // self.limits.steps_per_checkpoint:
                if stats.skipped:
                    log.warning("%d of the last %d steps had a non-finite loss or gradient and changed no weight; "
                                "if this goes on, lower --initial-learning-rate", stats.skipped,
                                stats.steps + stats.skipped)
                self._checkpoint(step, stats.figures(), {"gradient_norm": float(norm), "learning_rate": float(rate)},
                                 progress.elapsed())
                stats = IntervalStats()
        return step, None

    def _checkpoint(self, step: int, figures: dict[str, float], extra: dict[str, float], elapsed: float) -> None:
        log.info("step %d: loss %.4f, perplexity %.3f, %.3f s/step, %.1f images/s", step, figures["loss"],
                 figures["perplexity"], figures["seconds_per_step"], figures["images_per_second"])
        if self.checkpointer is None:
            return
        if self.checkpointer.writer is not None:
            scalars = {k: v for k, v in figures.items() if k != "seconds_per_step"}
            write_scalars(self.checkpointer.writer, step, {**scalars, **extra})
        self.checkpointer.save(self.raw_session, step, elapsed)
