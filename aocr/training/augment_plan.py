"""What --augment asks of the input pipeline: a level of distortions, and for `auto` how many images come
undistorted before it starts (aocr.core.defaults.AUTO_UNDISTORTED_EPOCHS passes over the training set)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aocr.core import defaults
from aocr.training.strategy import Strategy

log = logging.getLogger("aocr")


@dataclass(frozen=True)
class AugmentPlan:
    level: str  # the distortions' strength: none, light or strong (aocr.data.augment)
    undistorted_first: int  # images this trainer reads undistorted before the distortions start
    starts_at_step: int | None = None  # the global step at which they start, if it is after this run's first

    def notices(self) -> dict[int, str]:
        """What the training log says when the global step reaches a key (aocr.training.loop.Limits.notices)."""
        if self.starts_at_step is None:
            return {}
        return {self.starts_at_step: f"{_passes_done(self.level)} (--augment auto)"}


def _passes_done(level: str) -> str:
    return f"{defaults.AUTO_UNDISTORTED_EPOCHS} passes over the training set are done, {level} distortions from here"


def plan_augmentation(requested: str, steps_per_epoch: int, start_step: int, batch_size: int,
                      strategy: Strategy) -> AugmentPlan:
    """The plan for --augment `requested` of a run that starts at global step `start_step`; `auto` counts the
    undistorted passes from step 0, so a resumed run goes on where the last one stopped."""
    if requested != "auto":
        return AugmentPlan(requested, 0)
    level, epochs = defaults.AUTO_AUGMENT_LEVEL, defaults.AUTO_UNDISTORTED_EPOCHS
    undistorted_steps = max(0, epochs * steps_per_epoch - start_step)
    if not undistorted_steps:
        log.info("--augment auto: %s", _passes_done(level))
        return AugmentPlan(level, 0)
    log.info("--augment auto: the images as they are until step %d (%d passes over the training set), %s "
             "distortions after it (--augment none or %s fixes one level)", start_step + undistorted_steps, epochs,
             level, level)
    # An asynchronous cluster advances the global step once per trainer's batch, so each reads a share.
    readers = strategy.shards if strategy.steps_count_every_trainer else 1
    return AugmentPlan(level, undistorted_steps * batch_size // readers, start_step + undistorted_steps)
