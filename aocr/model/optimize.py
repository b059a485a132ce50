"""The training op: optimizer, gradient clipping, batch-norm updates, global step."""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf

tf1 = tf.compat.v1


# Adam's rate is scaled down with the square root of the batch size below the batch size its default rate
# was tuned at (a smaller batch has a noisier gradient and takes shorter steps with it), and not scaled
# up above it: a longer step at large batches made the attention align later, not sooner
# (benchmarks/RESULTS.md has the runs).
REFERENCE_BATCH = 32


# The rate stays constant for the first DECAY_START of the training budget (the steps of --num-epoch
# or --max-steps, or --max-minutes, whichever ends first), then follows a half cosine down to
# FINAL_RATE_SCALE of itself: the last part of a known budget refines instead of wandering.
DECAY_START = 0.6
FINAL_RATE_SCALE = 0.05


def rate_scale(budget_used: float) -> float:
    """The multiplier of the learning rate when `budget_used` (0 to 1) of the training budget is spent."""
    if budget_used <= DECAY_START:
        return 1.0
    into_decay = min(1.0, (budget_used - DECAY_START) / (1.0 - DECAY_START))
    return FINAL_RATE_SCALE + (1.0 - FINAL_RATE_SCALE) * 0.5 * (1.0 + math.cos(math.pi * into_decay))


# A run that starts from another model's weights (--init-from) raises its rate linearly over its first
# FINE_TUNE_WARMUP_STEPS: Adam's first steps, with no gradient history yet, move every weight by the
# full rate whatever its gradient's size, and undo much of what the other model had learned.
FINE_TUNE_WARMUP_STEPS = 100


def warmup_scale(steps_done: int, warmup_steps: int) -> float:
    """The multiplier of the learning rate after `steps_done` steps of a run with `warmup_steps` of warm-up."""
    return 1.0 if steps_done >= warmup_steps else (steps_done + 1) / warmup_steps


def batch_scaled_rate(optimizer: str, base_rate: float, batch_size: int) -> float:
    """Adam: base_rate * sqrt(min(batch_size, REFERENCE_BATCH) / REFERENCE_BATCH); the others: base_rate."""
    return base_rate * (min(batch_size, REFERENCE_BATCH) / REFERENCE_BATCH) ** 0.5 if optimizer == "adam" else base_rate


def make_optimizer(name: str, learning_rate: float | tf.Tensor) -> tf1.train.Optimizer:
    if name == "adam":
        return tf1.train.AdamOptimizer(learning_rate)
    if name == "adadelta":
        return tf1.train.AdadeltaOptimizer(learning_rate)
    if name == "sgd":
        return tf1.train.MomentumOptimizer(learning_rate, momentum=0.9)
    raise ValueError(f"unknown optimizer {name!r}")


@dataclass
class TrainOps:
    gradient_norm: tf.Tensor  # scalar, before clipping
    step_after: tf.Tensor  # int64 scalar: the global step read after this step's update, so fetching it runs the step


def _zero_unless(finite: tf.Tensor, gradient: tf.Tensor | tf.IndexedSlices | None):
    """The gradient where `finite` (a bool scalar) holds, zeros of its shape where it does not."""
    if gradient is None:
        return None
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(_zero_unless(finite, gradient.values), gradient.indices, gradient.dense_shape)
    return tf.where(finite, gradient, tf.zeros_like(gradient))


def build_train_op(loss: tf.Tensor, optimizer: tf1.train.Optimizer, global_step: tf.Variable,
                   max_gradient_norm: float | None, extra_updates: list) -> TrainOps:
    """Minimize `loss`, clipping gradients to `max_gradient_norm` (None: no clipping) and
    running `extra_updates` (batch-norm averages) with every step. A step whose gradient norm is
    not finite applies zero gradients; its gradient_norm output says so (NaN or inf)."""
    variables = tf1.trainable_variables()
    gradients = tf.gradients(loss, variables)
    norm = tf.linalg.global_norm(gradients)
    # A batch whose loss or gradient is not finite changes no weight: one NaN would otherwise spread
    # through the optimizer's moments to every weight and end the run (seen on long lines of text).
    finite = tf.math.is_finite(norm)
    gradients = [_zero_unless(finite, gradient) for gradient in gradients]
    if max_gradient_norm is not None:
        gradients, _ = tf.clip_by_global_norm(gradients, max_gradient_norm, use_norm=tf.where(finite, norm, 0.0))
    with tf.control_dependencies(extra_updates):
        train_op = optimizer.apply_gradients(zip(gradients, variables, strict=True), global_step=global_step)
    with tf.control_dependencies([train_op]):
        step_after = tf.identity(global_step.read_value())
    return TrainOps(norm, step_after)
