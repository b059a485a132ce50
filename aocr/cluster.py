"""The parts of distributed training that talk to TensorFlow's runtime: session creation for
non-chief workers, the start barrier, and parameter servers that leave when the trainers are done."""

from __future__ import annotations

import logging
import time

import tensorflow as tf

from aocr.distributed import ClusterTask
from aocr.errors import AocrError
from aocr.session import session_config
from aocr.stop_request import StopRequest

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
            StopRequest() as stop:
        while remaining and not stop.requested:
            try:
                session.run(take_one, options=wait)
                remaining -= 1
            except tf.errors.DeadlineExceededError:
                continue
    log.info("parameter server %d: done", cluster.task_index)
    return 0
