"""`aocr train`'s library (its flags: aocr.cli.train): TFRecords -> checkpoints, params.json and TensorBoard
summaries in the model dir.

The parts: the training graph (aocr.training.graph), a session strategy for one machine or a
cluster (aocr.training.strategy, aocr.training.cluster), and the loop with its checkpointer (aocr.training.loop,
aocr.training.checkpoints). This module puts them together as a TrainConfig says.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from aocr.core import defaults
from aocr.core import params as model_params
from aocr.core.errors import AocrError
from aocr.core.params import ModelParams
from aocr.core.precision import training_compute_dtype
from aocr.core.session import best_dir, checkpoint_step, latest_checkpoint
from aocr.core.signals import StopRequest
from aocr.data.holdout import Split, split_scan
from aocr.data.records import each_problem_once, expand_dataset_paths, report_scan
from aocr.data.survey import resolve_flags, resolve_from_data
from aocr.model.optimize import FINE_TUNE_WARMUP_STEPS, batch_scaled_rate
from aocr.training import distributed
from aocr.training.augment_plan import plan_augmentation
from aocr.training.checkpoints import CheckpointCallback, Checkpointer, note_changed_settings
from aocr.training.cluster import ClusterStrategy, cluster_session_config, serve_parameters
from aocr.training.graph import TrainingGraph, build_training_graph
from aocr.training.loop import Limits, TrainingLoop
from aocr.training.strategy import Strategy
from aocr.training.validation import Validation
from aocr.training.warm_start import WEIGHT_SHAPING, warm_start

tf1 = tf.compat.v1
log = logging.getLogger("aocr")


@dataclass
class TrainConfig:
    dataset: str
    model_dir: str
    batch_size: int = defaults.TRAIN_BATCH_SIZE
    num_epoch: int = defaults.NUM_EPOCH
    max_steps: int | None = None
    steps_per_checkpoint: int = defaults.STEPS_PER_CHECKPOINT
    optimizer: str = defaults.OPTIMIZER
    learning_rate: float | None = None
    max_gradient_norm: float | None = defaults.MAX_GRADIENT_NORM
    resume: bool = True
    seed: int | None = None
    gpu_id: int | None = None
    # the CNN's arithmetic in training: auto, float32 or bfloat16 (aocr.core.precision)
    precision: str = defaults.PRECISION
    augment: str = defaults.AUGMENT  # random distortions of the training images: auto, none, light or strong
    validation: str | None = None  # TFRecords scored at every checkpoint (first defaults.VALIDATION_LIMIT records)
    validation_split: float = defaults.VALIDATION_SPLIT  # share of the training records held out (no --validation)
    patience: int | None = defaults.PATIENCE  # validated checkpoints without improvement before stopping
    max_minutes: float | None = None  # stop (and save) after this much training time
    init_from: str | None = None  # a model dir whose weights a new model starts from
    synchronous: bool = True  # in a cluster: aggregate every trainer's gradients for each step
    step_timeout: float = defaults.STEP_TIMEOUT  # in a cluster: a step waiting longer means a peer is gone
    max_image_pixels: int = defaults.MAX_IMAGE_PIXELS  # records whose image declares more are skipped

    @property
    def base_learning_rate(self) -> float:
        """--initial-learning-rate, or the optimizer's default."""
        return self.learning_rate if self.learning_rate is not None else defaults.LEARNING_RATES[self.optimizer]

    @property
    def effective_learning_rate(self) -> float:
        """The rate the optimizer runs at: the base rate, scaled to the batch size for Adam."""
        return batch_scaled_rate(self.optimizer, self.base_learning_rate, self.batch_size)

    def run_settings(self) -> dict[str, object]:
        """The settings a resumed run may change, as the model dir's training.json records them
        (aocr.training.checkpoints.SETTING_FLAGS names the flag of each)."""
        return {"augment": self.augment, "validation_split": self.validation_split, "validation": self.validation,
                "batch_size": self.batch_size, "optimizer": self.optimizer,
                "initial_learning_rate": self.base_learning_rate}


def _scan(config: TrainConfig, params: ModelParams) -> Split:
    """The training records, read once: which ones to train on, and those --validation-split holds out."""
    fraction = 0.0 if config.validation else config.validation_split
    split = split_scan(expand_dataset_paths(config.dataset), params, fraction, config.max_image_pixels)
    report_scan(split.training, params)
    return split


def _validation(config: TrainConfig, split: Split, params: ModelParams, strategy: Strategy) -> Validation | None:
    """What to score at each checkpoint (chief only). A split that leaves less than one batch to train on
    is an error; one that holds out nothing (too few records) trains without validation."""
    if config.validation:
        return Validation.from_dataset(config.validation, params, config.batch_size) if strategy.is_chief else None
    if not config.validation_split:
        return None
    training, fraction = split.training, config.validation_split
    if not split.held_out:
        log.warning("--validation-split %g holds out none of the %d usable records, too few to set any aside: "
                    "training on all of them without validation (--validation DATASET validates on another file)",
                    fraction, training.usable)
        return None
    if training.usable < config.batch_size:
        raise AocrError(f"--validation-split {fraction:g} holds out {split.held_out} of the {training.usable_in_all} "
                        f"usable records, leaving {training.usable} to train on: less than one batch (--batch-size "
                        f"{config.batch_size}). Pass a smaller --validation-split or --batch-size, --validation-split "
                        "0 to train without validation, or --validation DATASET to validate on another file")
    scored = len(split.validation)
    log.info("--validation-split %g: %d records held out for validation%s, %d to train on", fraction,
             split.held_out, f" (the first {scored} scored at each checkpoint)" if scored < split.held_out else "",
             training.usable)
    return Validation(split.validation, config.batch_size) if strategy.is_chief else None


def _total_steps(config: TrainConfig, usable: int, strategy: Strategy, start_step: int) -> int:
    """The global step at which the requested epochs are done (or --max-steps, if sooner).

    Synchronous trainers each read their own shard for one global step; asynchronous ones
    each advance the global step by one per batch of their own, so an epoch counts all trainers' steps.
    """
    total = _steps_per_epoch(config, usable, strategy) * config.num_epoch + start_step
    return total if config.max_steps is None else min(total, config.max_steps)


def _steps_per_epoch(config: TrainConfig, usable: int, strategy: Strategy) -> int:
    readers = 1 if strategy.steps_count_every_trainer else strategy.shards
    return math.ceil(usable / readers / config.batch_size)


def train(config: TrainConfig, params: ModelParams, strategy: Strategy | None = None,
          on_checkpoint: CheckpointCallback | None = None) -> int:
    """Train until the epochs or max_steps are done, time or patience runs out, or a stop is requested;
    returns the global step reached. Only the chief writes params.json, checkpoints and summaries."""
    strategy = strategy or Strategy()
    split = _scan(config, params)
    scan, validation = split.training, _validation(config, split, params, strategy)
    cnn_dtype = training_compute_dtype(config.precision, config.gpu_id, in_cluster=strategy.in_cluster)
    checkpoint = latest_checkpoint(config.model_dir) if config.resume else None
    augmentation = plan_augmentation(config.augment, _steps_per_epoch(config, scan.usable, strategy),
                                     checkpoint_step(checkpoint), config.batch_size, strategy)
    settings = {"batch_size": config.batch_size, "num_epoch": config.num_epoch, "seed": config.seed,
                "augment": augmentation.level, "undistorted_first": augmentation.undistorted_first,
                "optimizer": config.optimizer, "learning_rate": config.effective_learning_rate,
                "max_gradient_norm": config.max_gradient_norm, "gpu_id": config.gpu_id, "cnn_dtype": cnn_dtype}
    training = build_training_graph(scan, params, settings, strategy, validation is not None)
    if strategy.is_chief:
        tf.io.gfile.makedirs(config.model_dir)
        if checkpoint is None and tf.io.gfile.exists(best_dir(config.model_dir)):
            tf.io.gfile.rmtree(best_dir(config.model_dir))  # a new model: the old one's best is no contender
    session, raw_session = strategy.open(training.graph, training.init, training.saver, checkpoint)
    with training.graph.as_default():
        if config.init_from and strategy.is_chief:
            if checkpoint:
                log.info("resuming from %s: --init-from %s is not used", checkpoint, config.init_from)
            else:
                warm_start(raw_session, params, config.init_from)
        if validation:
            validation.attach(raw_session, training.validation, params)
        strategy.start(raw_session)
        if checkpoint and strategy.is_chief:
            log.info("resumed from %s", checkpoint)
            note_changed_settings(config.model_dir, config.run_settings())
        return _run_loop(config, params, training, strategy, (session, raw_session), validation, scan.usable,
                         cnn_dtype.name, on_checkpoint, augmentation.notices())


def _run_loop(config: TrainConfig, params: ModelParams, training: TrainingGraph, strategy: Strategy, sessions: tuple,
              validation: Validation | None, usable: int, cnn_dtype: str,
              on_checkpoint: CheckpointCallback | None, notices: dict[int, str]) -> int:
    session, raw_session = sessions
    start_step = step = int(raw_session.run(training.global_step))
    total = _total_steps(config, usable, strategy, start_step)
    writer = tf1.summary.FileWriter(config.model_dir, graph=None) if strategy.is_chief else None
    checkpointer = (Checkpointer(config.model_dir, params, training.saver, validation, writer,
                                 on_checkpoint, config.run_settings()) if strategy.is_chief else None)
    if checkpointer is not None and config.resume and start_step > 0:
        checkpointer.saved_step = start_step
    warmup = FINE_TUNE_WARMUP_STEPS if config.init_from and start_step == 0 else 0
    limits = Limits(total, config.steps_per_checkpoint,
                    None if config.max_minutes is None else 60 * config.max_minutes, config.patience, start_step,
                    warmup, notices)
    loop = TrainingLoop(training, strategy, session, raw_session, checkpointer, limits)
    try:
        if step >= total:
            log.info("global step %d has already reached --max-steps %d; nothing to do", step, total)
            return step
        log.info("training from step %d%s: %d images/epoch, batch %d, %s at %g, augment %s, %s convolutions",
                 step, strategy.describe(), usable, config.batch_size, config.optimizer,
                 config.effective_learning_rate, config.augment, cnn_dtype)
        if warmup:
            log.info("--init-from: the learning rate rises to its full value over the first %d steps, so that "
                     "the first steps keep what %s learned", warmup, config.init_from)
        step = loop.run(step)
    finally:
        if writer:
            writer.close()
        strategy.close(session, raw_session)
    log.info("stopped at step %d after %d steps this run (%d run by this task)", step, step - start_step,
             loop.own_steps)
    return step


def resolve_params(config: TrainConfig, explicit: dict[str, Any]) -> ModelParams:
    """The model's params: its params.json when resuming, else the shape given (explicit: the ModelParams fields
    set by flags, as given), the model named by init_from (for the sizes of the layers) and the training data
    (for what is left on auto)."""
    stored = model_params.load(config.model_dir) if config.resume else None
    if stored is None:
        if config.init_from:
            source = model_params.require(config.init_from)
            explicit = {**{name: getattr(source, name) for name in WEIGHT_SHAPING}, **explicit}
        explicit = resolve_from_data(explicit, expand_dataset_paths(config.dataset))
    else:
        explicit = resolve_flags(explicit)
    return model_params.resolve(explicit, stored, config.model_dir)


def run_training(config: TrainConfig, explicit: dict[str, Any]) -> int:
    """`aocr train`, watched for signals from start to end: one before or after the training loop stops at once
    (there is nothing to save), one during it saves and stops, and a second one always stops at once.
    A bad record is named once, though a new model's files are read twice. explicit: as resolve_params takes it."""
    with StopRequest(None), each_problem_once():
        return _run(config, explicit)


def _run(config: TrainConfig, explicit: dict[str, Any]) -> int:
    params = resolve_params(config, explicit)
    cluster = distributed.from_environment()
    if cluster is None:
        train(config, params)
        return 0
    if cluster.task_type == "evaluator":
        raise AocrError("TF_CONFIG task type 'evaluator' is not supported; run `aocr test` on the checkpoints")
    server = tf1.train.Server(tf.train.ClusterSpec(cluster.cluster), job_name=cluster.task_type,
                              task_index=cluster.task_index, config=cluster_session_config(cluster))
    if cluster.task_type == "ps":
        return serve_parameters(cluster, server.target, config.step_timeout)
    train(config, params, ClusterStrategy(cluster, server.target, config.synchronous, config.step_timeout))
    return 0
