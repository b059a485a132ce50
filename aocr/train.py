"""`aocr train`: TFRecords -> checkpoints, params.json and TensorBoard summaries in the model dir."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

from aocr import defaults
from aocr import params as model_params
from aocr.cli import explicit_shape
from aocr.data.pipeline import training_dataset
from aocr.data.records import expand_dataset_paths, report_scan, scan_labels
from aocr.fileio import join
from aocr.model.model import build_model
from aocr.model.optimize import build_train_op, make_optimizer
from aocr.params import ModelParams
from aocr.progress import Progress
from aocr.session import latest_checkpoint, model_device, restore, session_config

tf1 = tf.compat.v1
log = logging.getLogger("aocr")


@dataclass
class TrainConfig:
    dataset: str
    model_dir: str
    batch_size: int = defaults.BATCH_SIZE
    num_epoch: int = defaults.NUM_EPOCH
    max_steps: int | None = None
    steps_per_checkpoint: int = defaults.STEPS_PER_CHECKPOINT
    optimizer: str = defaults.OPTIMIZER
    learning_rate: float | None = None
    max_gradient_norm: float | None = defaults.MAX_GRADIENT_NORM
    resume: bool = True
    seed: int | None = None
    gpu_id: int | None = None
    keep_checkpoints: int = 5
    max_seconds: float | None = None  # stop (and save) after this much wall-clock training time
    # Called after each checkpoint with (global step, seconds of training so far, checkpoint path).
    on_checkpoint: Callable[[int, float, str], None] | None = None

    @property
    def effective_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else defaults.LEARNING_RATES[self.optimizer]


class StopRequest:
    """Turns the first SIGINT or SIGTERM into a request to save and stop; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("%s received: saving a checkpoint and stopping (Ctrl-C again to stop at once)",
                    signal.Signals(signum).name)


def write_scalars(writer: tf1.summary.FileWriter, step: int, values: dict[str, float]) -> None:
    summary = tf1.Summary(value=[tf1.Summary.Value(tag=tag, simple_value=value) for tag, value in values.items()])
    writer.add_summary(summary, step)
    writer.flush()


def train(config: TrainConfig, params: ModelParams) -> int:
    """Train until the epochs or max_steps are done or a stop is requested; returns the global step reached."""
    files = expand_dataset_paths(config.dataset)
    scan = scan_labels(files, params)
    report_scan(scan, params)
    steps_per_epoch = math.ceil(scan.usable / config.batch_size)
    graph = tf.Graph()
    with graph.as_default():
        if config.seed is not None:
            tf1.set_random_seed(config.seed)
        batch = tf1.data.make_one_shot_iterator(
            training_dataset(scan, params, config.batch_size, config.num_epoch, config.seed)).get_next()
        with model_device(config.gpu_id):
            model = build_model(batch["images"], batch["widths"], params, "train", batch["label_ids"])
            global_step = tf1.train.get_or_create_global_step()
            optimizer = make_optimizer(config.optimizer, config.effective_learning_rate)
            ops = build_train_op(model.loss, optimizer, global_step, config.max_gradient_norm,
                                 model.batch_norm_updates)
        images_in_batch = tf.shape(batch["widths"])[0]
        saver = tf1.train.Saver(max_to_keep=config.keep_checkpoints)
        init = tf1.global_variables_initializer()
    graph.finalize()

    tf.io.gfile.makedirs(config.model_dir)
    checkpoint_prefix = join(config.model_dir, "model.ckpt")
    with tf1.Session(graph=graph, config=session_config()) as session, StopRequest() as stop:
        session.run(init)
        checkpoint = latest_checkpoint(config.model_dir) if config.resume else None
        if checkpoint:
            restore(session, saver, checkpoint)
            log.info("resumed from %s", checkpoint)
        step = int(session.run(global_step))
        start_step = saved_step = step
        total = steps_per_epoch * config.num_epoch + start_step
        if config.max_steps is not None:
            total = min(total, config.max_steps)
        if step >= total:
            log.info("global step %d has already reached --max-steps %d; nothing to do", step, total)
            return step
        log.info("training from step %d: %d images/epoch, about %d steps/epoch, batch %d, %s at %g",
                 step, scan.usable, steps_per_epoch, config.batch_size, config.optimizer,
                 config.effective_learning_rate)
        writer = tf1.summary.FileWriter(config.model_dir)
        progress = Progress("train", total=total, log_every=0, initial=step)

        def save() -> None:
            nonlocal saved_step
            if model_params.load(config.model_dir) != params:
                model_params.save(config.model_dir, params)
            path = saver.save(session, checkpoint_prefix, global_step=step, write_meta_graph=False)
            saved_step = step
            log.info("saved %s", path)
            if config.on_checkpoint is not None:
                config.on_checkpoint(step, progress.elapsed(), path)

        def out_of_time() -> bool:
            return config.max_seconds is not None and progress.elapsed() >= config.max_seconds

        interval_loss, interval_images, interval_steps = 0.0, 0, 0
        interval_start = time.monotonic()
        try:
            while not stop.requested and step < total and not out_of_time():
                try:
                    _, loss, norm, images = session.run([ops.train_op, model.loss, ops.gradient_norm,
                                                         images_in_batch])
                except tf.errors.OutOfRangeError:
                    break
                step += 1
                interval_loss += loss
                interval_images += images
                interval_steps += 1
                progress.update(loss=f"{loss:.3f}")
                if step % config.steps_per_checkpoint == 0:
                    seconds = time.monotonic() - interval_start
                    mean_loss = interval_loss / interval_steps
                    perplexity = math.exp(mean_loss) if mean_loss < 300 else float("inf")
                    log.info("step %d: loss %.4f, perplexity %.3f, %.3f s/step, %.1f images/s",
                             step, mean_loss, perplexity, seconds / interval_steps, interval_images / seconds)
                    write_scalars(writer, step, {
                        "loss": mean_loss, "perplexity": perplexity, "gradient_norm": float(norm),
                        "learning_rate": config.effective_learning_rate,
                        "images_per_second": interval_images / seconds})
                    save()
                    interval_loss, interval_images, interval_steps = 0.0, 0, 0
                    interval_start = time.monotonic()
        finally:
            progress.close()
            if step > saved_step or (step == start_step and not checkpoint):
                save()
            writer.close()
        log.info("stopped at step %d after %d steps this run", step, step - start_step)
        return step


def run(args: argparse.Namespace) -> int:
    stored = model_params.load(args.model_dir) if not args.no_resume else None
    params = model_params.resolve(explicit_shape(args), stored, args.model_dir)
    config = TrainConfig(
        dataset=args.dataset_path, model_dir=args.model_dir, batch_size=args.batch_size,
        num_epoch=args.num_epoch, max_steps=args.max_steps, steps_per_checkpoint=args.steps_per_checkpoint,
        optimizer=args.optimizer, learning_rate=args.initial_learning_rate,
        max_gradient_norm=None if args.no_gradient_clipping else args.max_gradient_norm,
        resume=not args.no_resume, seed=args.seed, gpu_id=args.gpu_id)
    train(config, params)
    return 0
