"""How a training graph is placed and its session opened and closed: on one machine (here) or as a task
of a cluster (aocr.training.cluster.ClusterStrategy, the same interface)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import tensorflow as tf

from aocr.core.session import restore, session_config

tf1 = tf.compat.v1

CLOSE_WAIT_SECONDS = 3.0
_CLOSING: list[threading.Thread] = []  # sessions still closing when close() returned


class Strategy:
    """One machine: the plain case. A cluster strategy overrides what differs."""

    is_chief = True
    in_cluster = False
    shards = 1  # trainers reading disjoint shares of the data
    shard = 0  # this trainer's share
    run_options: tf1.RunOptions | None = None  # options of every training step
    steps_count_every_trainer = False  # whether the global step advances once per trainer's step

    def epochs(self, num_epoch: int) -> int | None:
        """How many passes the input pipeline makes (None: without end)."""
        return num_epoch

    @contextlib.contextmanager
    def placement(self) -> Iterator[None]:
        yield

    def wrap_optimizer(self, optimizer: tf1.train.Optimizer) -> tf1.train.Optimizer:
        return optimizer

    def build_ops(self) -> None:
        """Extra ops in the training graph (a cluster's barrier and done tokens)."""

    def describe(self) -> str:
        return ""

    def open(self, graph: tf.Graph, init: tf.Operation, saver: tf1.train.Saver,
             checkpoint: str | None) -> tuple[object, tf1.Session]:
        """(session that runs steps, raw tf.Session for saving), initialized and restored from `checkpoint`."""
        graph.finalize()
        session = tf1.Session(graph=graph, config=session_config())
        session.run(init)
        if checkpoint:
            restore(session, saver, checkpoint)
        return session, session

    def start(self, raw_session: tf1.Session) -> None:
        """Called once the session is open, before the first step."""

    def step_failure(self, error: tf.errors.OpError) -> str | None:
        """A message when a step's error means the job cannot go on (a cluster's lost peer); None to re-raise."""
        return None

    def lost_peer(self) -> str | None:
        """Checked before each step: a message when a task the training needs has gone (a cluster's), else None."""
        return None

    def close(self, session: object, raw_session: tf1.Session) -> None:
        """Close the session, waiting at most CLOSE_WAIT_SECONDS: everything is saved by now, and
        closing can wait on the input pipeline's threads finishing a batch (seen: up to 22 s)."""
        closer = threading.Thread(target=session.close, name="aocr-session-close", daemon=True)
        closer.start()
        closer.join(CLOSE_WAIT_SECONDS)
        if closer.is_alive():
            _CLOSING.append(closer)


def closing_in_background() -> bool:
    """Whether a training session is still closing after close() stopped waiting for it."""
    return any(closer.is_alive() for closer in _CLOSING)
