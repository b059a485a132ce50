"""The parts of distributed training that talk to TensorFlow's runtime: session creation for
non-chief workers, the start barrier, and parameter servers that leave when the trainers are done."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import tensorflow as tf

from aocr.distributed import ClusterTask
from aocr.errors import AocrError
from aocr.session import session_config
from aocr.stop_request import StopRequest
from aocr.strategy import Strategy

tf1 = tf.compat.v1
log = logging.getLogger("aocr")


class WorkerSessionCreator(tf1.train.SessionCreator):
    """Waits for the chief to initialize the variables, checking every second (TF's own creator waits 30 s
    between checks, long enough for a small job to be over)."""

    def __init__(self, scaffold: tf1.train.Scaffold, master: str, config: tf1.ConfigProto) -> None:
        self.scaffold, self.master, self.config = scaffold, master, config

    def create_session(self) -> tf1.Session:
        self.scaffold.finalize()
        manager = tf1.train.SessionManager(
            local_init_op=self.scaffold.local_init_op, ready_op=self.scaffold.ready_op,
            ready_for_local_init_op=self.scaffold.ready_for_local_init_op, graph=tf1.get_default_graph(),
            recovery_wait_secs=1)
        return manager.wait_for_session(self.master, config=self.config, max_wait_secs=30 * 60)


def cluster_session_config(cluster: ClusterTask) -> tf1.ConfigProto:
    """Each task talks only to the parameter servers and itself, so a finished or failed peer
    does not hold up the others."""
    config = session_config()
    config.device_filters.extend(["/job:ps", cluster.device])
    return config


def _done_queue(cluster: ClusterTask, ps_index: int) -> tf1.FIFOQueue:
    """A queue on parameter server `ps_index` in which each trainer leaves a token when it is done."""
    with tf.device(f"/job:ps/task:{ps_index}"):
        return tf1.FIFOQueue(len(cluster.trainers), tf.int32, shared_name=f"aocr_done_{ps_index}")


def start_barrier(cluster: ClusterTask) -> tuple[tf.Operation, tf.Tensor]:
    """(arrive, arrived): a trainer runs `arrive` once and waits until `arrived` counts every trainer,
    so all start together and share the work from the first step."""
    with tf.device("/job:ps/task:0"):
        queue = tf1.FIFOQueue(len(cluster.trainers), tf.int32, shared_name="aocr_started")
    return queue.enqueue(1), queue.size()


def wait_for_trainers(session: tf1.Session, barrier: tuple[tf.Operation, tf.Tensor], count: int,
                      timeout: float) -> None:
    arrive, arrived = barrier
    session.run(arrive)
    deadline = time.monotonic() + timeout
    while session.run(arrived) < count:
        if time.monotonic() > deadline:
            raise AocrError(f"not every trainer of the cluster started within {timeout:g} s (--step-timeout)")
        time.sleep(0.2)


def parameter_server_done_ops(cluster: ClusterTask) -> list[tf.Operation]:
    return [_done_queue(cluster, i).enqueue(1) for i in range(len(cluster.cluster.get("ps", [])))]


def serve_parameters(cluster: ClusterTask, master: str) -> int:
    """A parameter server holds variables for the trainers, and leaves once each has said it is done
    (or on SIGINT/SIGTERM)."""
    graph = tf.Graph()
    with graph.as_default():
        take_one = _done_queue(cluster, cluster.task_index).dequeue()
    remaining = len(cluster.trainers)
    log.info("parameter server %d: serving until %d trainers are done", cluster.task_index, remaining)
    wait = tf1.RunOptions(timeout_in_ms=1000)
    with tf1.Session(master, graph=graph, config=cluster_session_config(cluster)) as session, \
            StopRequest("stopping") as stop:
        while remaining and not stop.requested:
            try:
                session.run(take_one, options=wait)
                remaining -= 1
            except tf.errors.DeadlineExceededError:
                continue
    log.info("parameter server %d: done", cluster.task_index)
    return 0


class _RawSession(tf1.train.SessionRunHook):
    """Keeps the tf.Session inside a MonitoredSession, which Saver.save needs."""

    session: tf1.Session | None = None

    def after_create_session(self, session: tf1.Session, coord: object) -> None:
        self.session = session


class ClusterStrategy(Strategy):
    """A trainer task of a TF_CONFIG cluster: variables on the parameter servers, this task's shard of the
    data, a MonitoredSession that the chief initializes or restores and the others wait for."""

    def __init__(self, cluster: ClusterTask, master: str, synchronous: bool, step_timeout: float) -> None:
        self.cluster, self.master = cluster, master
        self.synchronous, self.step_timeout = synchronous, step_timeout
        self.is_chief = cluster.is_chief
        self.in_cluster = True
        self.shards, self.shard = len(cluster.trainers), cluster.trainer_rank
        self.steps_count_every_trainer = not synchronous
        # A step that waits this long has lost a peer: report it rather than hang.
        self.run_options = tf1.RunOptions(timeout_in_ms=int(1000 * step_timeout))
        self.hooks: list = []

    def epochs(self, num_epoch: int) -> None:
        return None  # every task reads until the shared global step says the epochs are done

    @contextlib.contextmanager
    def placement(self) -> Iterator[None]:
        setter = tf1.train.replica_device_setter(cluster=tf.train.ClusterSpec(self.cluster.cluster),
                                                 worker_device=self.cluster.device)
        with tf1.device(setter):
            yield

    def wrap_optimizer(self, optimizer: tf1.train.Optimizer) -> tf1.train.Optimizer:
        if not self.synchronous:
            return optimizer
        optimizer = tf1.train.SyncReplicasOptimizer(optimizer, replicas_to_aggregate=self.shards,
                                                    total_num_replicas=self.shards)
        self.hooks.append(optimizer.make_session_run_hook(self.is_chief))
        return optimizer

    def build_ops(self) -> None:
        self.done_signals = parameter_server_done_ops(self.cluster)
        self.barrier = start_barrier(self.cluster)

    def describe(self) -> str:
        return f" as {self.cluster.task_type} {self.cluster.task_index} of {self.shards} trainers"

    def open(self, graph: tf.Graph, init: tf.Operation, saver: tf1.train.Saver,
             checkpoint: str | None) -> tuple[object, tf1.Session]:
        scaffold = tf1.train.Scaffold(init_op=init, saver=saver)
        config = cluster_session_config(self.cluster)
        if self.is_chief:
            creator = tf1.train.ChiefSessionCreator(scaffold=scaffold, master=self.master, config=config,
                                                    checkpoint_filename_with_path=checkpoint)
        else:
            creator = WorkerSessionCreator(scaffold, self.master, config)
        raw = _RawSession()
        with graph.as_default():
            # A short grace period: threads still waiting on a vanished peer are not worth two minutes.
            session = tf1.train.MonitoredSession(session_creator=creator, hooks=[*self.hooks, raw],
                                                 stop_grace_period_secs=5)
        return session, raw.session

    def start(self, raw_session: tf1.Session) -> None:
        wait_for_trainers(raw_session, self.barrier, self.shards, self.step_timeout)

    def step_failure(self, error: tf.errors.OpError) -> str | None:
        if isinstance(error, tf.errors.DeadlineExceededError):
            return (f"a training step waited over {self.step_timeout:g} s: another task of the cluster has "
                    "stopped or is unreachable")
        return None

    def close(self, session: object, raw_session: tf1.Session) -> None:
        for signal_done in self.done_signals:
            raw_session.run(signal_done)
        # A MonitoredSession whose peers are gone may complain on close, which changes nothing.
        with contextlib.suppress(tf.errors.OpError, RuntimeError):
            session.close()
