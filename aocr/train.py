"""`aocr train`: TFRecords -> checkpoints, params.json and TensorBoard summaries in the model dir."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

from aocr import defaults, distributed
from aocr import params as model_params
from aocr.cluster import (
    WorkerSessionCreator,
    cluster_session_config,
    parameter_server_done_ops,
    serve_parameters,
    start_barrier,
    wait_for_trainers,
)
from aocr.data.pipeline import training_dataset
from aocr.data.records import expand_dataset_paths, report_scan, scan_labels
from aocr.distributed import ClusterTask
from aocr.errors import AocrError
from aocr.fileio import join
from aocr.model.model import build_model
from aocr.model.optimize import build_train_op, make_optimizer
from aocr.params import ModelParams, explicit_shape
from aocr.precision import training_compute_dtype
from aocr.progress import Progress
from aocr.session import latest_checkpoint, model_device, restore, session_config
from aocr.stop_request import StopRequest
from aocr.summaries import write_scalars
from aocr.validation import Validation

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
    precision: str = defaults.PRECISION  # the CNN's arithmetic in training: auto, float32 or bfloat16 (aocr.precision)
    keep_checkpoints: int = 5
    validation: str | None = None  # TFRecords scored at every checkpoint (first VALIDATION_LIMIT records)
    max_seconds: float | None = None  # stop (and save) after this much wall-clock training time
    synchronous: bool = True  # in a cluster: aggregate every trainer's gradients for each step
    step_timeout: float = 300.0  # in a cluster: a step waiting longer than this means a peer is gone
    # Called after each checkpoint with (global step, seconds of training so far, checkpoint path).
    on_checkpoint: Callable[[int, float, str], None] | None = None

    @property
    def effective_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else defaults.LEARNING_RATES[self.optimizer]


class _RawSession(tf1.train.SessionRunHook):
    """Keeps the tf.Session inside a MonitoredSession, which Saver.save needs."""

    session: tf1.Session | None = None

    def after_create_session(self, session: tf1.Session, coord: object) -> None:
        self.session = session


def _open_session(graph: tf.Graph, config: TrainConfig, init: tf.Operation, saver: tf1.train.Saver,
                  cluster: ClusterTask | None, master: str, hooks: list) -> tuple[object, tf1.Session, str | None]:
    """(session to run steps in, raw tf.Session for saving, checkpoint resumed from).

    On one machine: a plain session, initialized then restored. In a cluster: a
    MonitoredSession; the chief initializes or restores, the others wait for it.
    """
    checkpoint = latest_checkpoint(config.model_dir) if config.resume else None
    if cluster is None:
        session = tf1.Session(graph=graph, config=session_config())
        session.run(init)
        if checkpoint:
            restore(session, saver, checkpoint)
        return session, session, checkpoint
    scaffold = tf1.train.Scaffold(init_op=init, saver=saver)
    if cluster.is_chief:
        creator = tf1.train.ChiefSessionCreator(scaffold=scaffold, master=master,
                                                config=cluster_session_config(cluster),
                                                checkpoint_filename_with_path=checkpoint)
    else:
        creator = WorkerSessionCreator(scaffold, master, cluster_session_config(cluster))
    raw = _RawSession()
    with graph.as_default():
        # A short grace period: threads still waiting on a vanished peer are not worth two minutes.
        session = tf1.train.MonitoredSession(session_creator=creator, hooks=[*hooks, raw], stop_grace_period_secs=5)
    return session, raw.session, checkpoint


def train(config: TrainConfig, params: ModelParams, cluster: ClusterTask | None = None, master: str = "") -> int:
    """Train until the epochs or max_steps are done or a stop is requested; returns the global step reached.

    With a cluster (from TF_CONFIG), this task trains on its shard of the data against
    variables on the parameter servers; only the chief writes params.json, checkpoints
    and summaries.
    """
    chief = cluster is None or cluster.is_chief
    shards, shard = (len(cluster.trainers), cluster.trainer_rank) if cluster else (1, 0)
    files = expand_dataset_paths(config.dataset)
    scan = scan_labels(files, params)
    report_scan(scan, params)
    steps_per_epoch = math.ceil(scan.usable / shards / config.batch_size)
    validation = Validation(config.validation, params, config.batch_size) if config.validation and chief else None
    cnn_dtype = training_compute_dtype(config.precision, config.gpu_id, in_cluster=cluster is not None)
    graph = tf.Graph()
    hooks: list = []
    with graph.as_default():
        if config.seed is not None:
            tf1.set_random_seed(config.seed)
        # In a cluster every task reads its data until the shared global step says the epochs are done.
        epochs = None if cluster else config.num_epoch
        placement = (tf1.device(tf1.train.replica_device_setter(
            cluster=tf.train.ClusterSpec(cluster.cluster), worker_device=cluster.device))
            if cluster else contextlib.nullcontext())
        with placement:
            batch = tf1.data.make_one_shot_iterator(
                training_dataset(scan, params, config.batch_size, epochs, config.seed, shards, shard)).get_next()
            with model_device(config.gpu_id):
                model = build_model(batch["images"], batch["widths"], params, "train", batch["label_ids"],
                                    cnn_dtype=cnn_dtype)
                global_step = tf1.train.get_or_create_global_step()
                optimizer = make_optimizer(config.optimizer, config.effective_learning_rate)
                if cluster and config.synchronous:
                    optimizer = tf1.train.SyncReplicasOptimizer(optimizer, replicas_to_aggregate=shards,
                                                                total_num_replicas=shards)
                    hooks.append(optimizer.make_session_run_hook(chief))
                ops = build_train_op(model.loss, optimizer, global_step, config.max_gradient_norm,
                                     model.batch_norm_updates)
            images_in_batch = tf.shape(batch["widths"])[0]
            if validation:
                validation.build(params, config.gpu_id)
        done_signals = parameter_server_done_ops(cluster) if cluster else []
        barrier = start_barrier(cluster) if cluster else None
        saver = tf1.train.Saver(max_to_keep=config.keep_checkpoints)
        init = tf1.global_variables_initializer()
    if cluster is None:
        graph.finalize()

    if chief:
        tf.io.gfile.makedirs(config.model_dir)
    checkpoint_prefix = join(config.model_dir, "model.ckpt")
    # A step that waits this long has lost a peer: report it rather than hang (cluster only).
    step_options = tf1.RunOptions(timeout_in_ms=int(1000 * config.step_timeout)) if cluster else None
    session, raw_session, checkpoint = _open_session(graph, config, init, saver, cluster, master, hooks)
    with graph.as_default(), StopRequest() as stop:
        if validation:
            validation.attach(raw_session)
        if barrier:
            wait_for_trainers(raw_session, barrier, shards, config.step_timeout)
        if checkpoint and chief:
            log.info("resumed from %s", checkpoint)
        step = int(raw_session.run(global_step))
        start_step = saved_step = step
        total = steps_per_epoch * config.num_epoch + start_step
        if config.max_steps is not None:
            total = min(total, config.max_steps)
        if step >= total:
            log.info("global step %d has already reached --max-steps %d; nothing to do", step, total)
            session.close()
            return step
        role = f" as {cluster.task_type} {cluster.task_index} of {shards} trainers" if cluster else ""
        log.info("training from step %d%s: %d images/epoch, about %d steps/epoch, batch %d, %s at %g, "
                 "%s convolutions", step, role, scan.usable, steps_per_epoch, config.batch_size, config.optimizer,
                 config.effective_learning_rate, cnn_dtype.name)
        writer = tf1.summary.FileWriter(config.model_dir, graph=None) if chief else None
        progress = Progress("train", total=total, log_every=0, initial=step)

        def save() -> None:
            nonlocal saved_step
            if model_params.load(config.model_dir) != params:
                model_params.save(config.model_dir, params)
            path = saver.save(raw_session, checkpoint_prefix, global_step=step, write_meta_graph=False)
            saved_step = step
            log.info("saved %s", path)
            if config.on_checkpoint is not None:
                config.on_checkpoint(step, progress.elapsed(), path)
            if validation:
                validation.run(writer, step)

        def out_of_time() -> bool:
            return config.max_seconds is not None and progress.elapsed() >= config.max_seconds

        interval_loss, interval_sequence_loss, interval_images, interval_steps = 0.0, 0.0, 0, 0
        interval_start = time.monotonic()
        own_steps = 0
        failed = None
        try:
            while not stop.requested and step < total and not out_of_time():
                try:
                    loss, sequence_loss, norm, images, step_after = session.run(
                        [model.loss, model.sequence_loss, ops.gradient_norm, images_in_batch, ops.step_after],
                        options=step_options)
                except tf.errors.OutOfRangeError:
                    break
                except tf.errors.DeadlineExceededError:
                    failed = (f"a training step waited over {config.step_timeout:g} s: another task of the "
                              "cluster has stopped or is unreachable")
                    break
                before, step = step, int(step_after)
                own_steps += 1
                interval_loss += loss
                interval_sequence_loss += sequence_loss
                interval_images += images
                interval_steps += 1
                progress.update(step - before, loss=f"{loss:.3f}")
                if step // config.steps_per_checkpoint > before // config.steps_per_checkpoint:
                    seconds = time.monotonic() - interval_start
                    mean_loss = interval_loss / interval_steps
                    mean_sequence_loss = interval_sequence_loss / interval_steps
                    perplexity = math.exp(mean_sequence_loss) if mean_sequence_loss < 300 else float("inf")
                    log.info("step %d: loss %.4f, perplexity %.3f, %.3f s/step, %.1f images/s",
                             step, mean_loss, perplexity, seconds / interval_steps, interval_images / seconds)
                    if chief:
                        write_scalars(writer, step, {
                            "loss": mean_loss, "sequence_loss": mean_sequence_loss, "perplexity": perplexity,
                            "gradient_norm": float(norm),
                            "learning_rate": config.effective_learning_rate,
                            "images_per_second": interval_images / seconds})
                        save()
                    interval_loss, interval_sequence_loss, interval_images, interval_steps = 0.0, 0.0, 0, 0
                    interval_start = time.monotonic()
        finally:
            progress.close()
            if chief and (step > saved_step or (step == start_step and not checkpoint)):
                save()
            if writer:
                writer.close()
            for signal_done in done_signals:
                raw_session.run(signal_done)
            close_quietly(session)
        if failed:
            raise AocrError(failed + (f"; the last checkpoint is in {config.model_dir}" if chief else ""))
        log.info("stopped at step %d after %d steps this run (%d run by this task)", step, step - start_step,
                 own_steps)
        return step


def close_quietly(session: object) -> None:
    """Close a session; a MonitoredSession whose peers are gone may complain, which changes nothing."""
    with contextlib.suppress(tf.errors.OpError, RuntimeError):
        session.close()


def run(args: argparse.Namespace) -> int:
    stored = model_params.load(args.model_dir) if not args.no_resume else None
    params = model_params.resolve(explicit_shape(args), stored, args.model_dir)
    config = TrainConfig(
        dataset=args.dataset_path, model_dir=args.model_dir, batch_size=args.batch_size,
        num_epoch=args.num_epoch, max_steps=args.max_steps, steps_per_checkpoint=args.steps_per_checkpoint,
        optimizer=args.optimizer, learning_rate=args.initial_learning_rate,
        max_gradient_norm=None if args.no_gradient_clipping else args.max_gradient_norm,
        resume=not args.no_resume, seed=args.seed, gpu_id=args.gpu_id, precision=args.precision,
        validation=args.validation,
        synchronous=not args.use_async, step_timeout=args.step_timeout)
    cluster = distributed.from_environment()
    if cluster is None:
        train(config, params)
        return 0
    if cluster.task_type == "evaluator":
        raise AocrError("TF_CONFIG task type 'evaluator' is not supported; run `aocr test` on the checkpoints")
    server = tf1.train.Server(tf.train.ClusterSpec(cluster.cluster), job_name=cluster.task_type,
                              task_index=cluster.task_index, config=cluster_session_config(cluster))
    if cluster.task_type == "ps":
        return serve_parameters(cluster, server.target)
    train(config, params, cluster, server.target)
    return 0
