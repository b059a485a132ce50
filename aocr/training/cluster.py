"""The parts of distributed training that talk to TensorFlow's runtime: session creation for
non-chief workers, the start barrier, and an ordered shutdown.

The shutdown keeps any task from waiting on one that has already left: a trainer closes its
training session first (bounded in time), then leaves a "done" token on every parameter
server; a parameter server leaves only once every trainer has said it is done or is gone, and
then only once every trainer's process has exited (its address no longer answers), so that no
trainer's session close talks to a parameter server that has left."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator

import tensorflow as tf

from aocr.core.errors import AocrError
from aocr.core.session import session_config
from aocr.core.signals import StopRequest
from aocr.training.distributed import ClusterTask
from aocr.training.strategy import Strategy

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


# Seconds a trainer gives each part of its shutdown (closing its session, saying it is done) before it goes on.
CLOSE_TIMEOUT = 30.0
# Seconds between a parameter server's looks at the trainers while it waits for them to leave.
POLL_SECONDS = 0.2


def _done_queue(cluster: ClusterTask, ps_index: int) -> tf1.FIFOQueue:
    """A queue on parameter server `ps_index` in which each trainer leaves its rank when it is done."""
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
    """Arrive at the start barrier and wait until all `count` trainers have; a trainer restarted after the
    cluster started finds the barrier full and goes on at once. At most `timeout` seconds."""
    arrive, arrived = barrier
    deadline = time.monotonic() + timeout
    joined = False
    while True:
        if session.run(arrived) >= count:
            return
        if not joined:
            # Bounded: the queue holds one token per trainer, so on a full one the enqueue would block for good;
            # when it times out, the next turn finds whether the others filled the barrier meanwhile.
            with contextlib.suppress(tf.errors.DeadlineExceededError):
                session.run(arrive, options=tf1.RunOptions(timeout_in_ms=1000))
                joined = True
        if time.monotonic() > deadline:
            raise AocrError(f"not every trainer of the cluster started within {timeout:g} s (--step-timeout)")
        if joined:
            time.sleep(0.2)


def answers(address: str, timeout: float = 1.0) -> bool:
    """Whether a task's address accepts a TCP connection, that is, whether its process still runs."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def task_name(job: str, index: int, cluster: ClusterTask) -> str:
    return f"{job} {index} ({cluster.cluster[job][index]})"


def silent_tasks(cluster: ClusterTask) -> list[str]:
    """The other tasks of the cluster whose address does not answer, named."""
    return [task_name(job, index, cluster) for job, addresses in cluster.cluster.items()
            for index, address in enumerate(addresses)
            if (job, index) != (cluster.task_type, cluster.task_index) and not answers(address)]


class PeerWatch:
    """Looks at the other tasks' addresses every few seconds from a thread and names those that have not
    answered for `patience` seconds: a synchronous trainer whose peer was killed may go on alone (the sync
    optimizer counts gradients, not trainers), so a step timing out cannot be the only sign."""

    def __init__(self, cluster: ClusterTask, tasks: list[tuple[str, int]], patience: float,
                 every: float = 2.0) -> None:
        self.cluster, self.patience, self.every = cluster, patience, every
        self.tasks = [t for t in tasks if t != (cluster.task_type, cluster.task_index)]
        self.silent_since: dict[tuple[str, int], float] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="aocr peer watch", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def _watch(self) -> None:
        while not self.stopped.wait(self.every):
            now = time.monotonic()
            for job, index in self.tasks:
                if answers(self.cluster.cluster[job][index]):
                    self.silent_since.pop((job, index), None)
                else:
                    self.silent_since.setdefault((job, index), now)

    def lost(self) -> list[str]:
        """The tasks silent for `patience` seconds or more, named."""
        now = time.monotonic()
        return [task_name(job, index, self.cluster) for (job, index), since in list(self.silent_since.items())
                if now - since >= self.patience]


def bounded(action: Callable[[], object], seconds: float, what: str) -> bool:
    """Run `action` in a thread and wait at most `seconds` for it; False (and a warning) if it took longer.

    TensorFlow's calls cannot be interrupted: one that waits on a vanished peer is left behind,
    in a daemon thread that does not keep the process alive."""
    finished = threading.Event()

    def run() -> None:
        try:
            action()
        except (tf.errors.OpError, RuntimeError) as e:  # a peer already gone: nothing more to do with it
            log.debug("%s: %s", what, e)
        finally:
            finished.set()

    threading.Thread(target=run, name=f"aocr {what}", daemon=True).start()
    if finished.wait(seconds):
        return True
    log.warning("%s took over %g s (a task of the cluster is gone?); going on without it", what, seconds)
    return False


def say_done(cluster: ClusterTask, master: str, timeout: float) -> None:
    """Leave this trainer's rank in every parameter server's done queue, from a session of its own
    (the training session is closed by then)."""
    graph = tf.Graph()
    with graph.as_default():
        tokens = [_done_queue(cluster, i).enqueue(cluster.trainer_rank) for i in range(len(cluster.cluster["ps"]))]
    with tf1.Session(master, graph=graph, config=cluster_session_config(cluster)) as session:
        session.run(tokens, options=tf1.RunOptions(timeout_in_ms=int(1000 * timeout)))


def _await_done_tokens(session: tf1.Session, take_one: tf.Tensor, cluster: ClusterTask, timeout: float,
                       stop: StopRequest) -> None:
    """Return once every trainer has said it is done, or those that have not are gone, or `timeout` seconds
    have passed since the first one said so (or a stop is requested)."""
    trainers = cluster.trainers
    done: set[int] = set()
    first_done = None
    wait = tf1.RunOptions(timeout_in_ms=1000)
    while not stop.requested and len(done) < len(trainers):
        with contextlib.suppress(tf.errors.DeadlineExceededError):
            done.add(int(session.run(take_one, options=wait)))
            first_done = first_done or time.monotonic()
        if first_done is None:
            continue  # before any trainer is done, a silent one may not have started yet
        waiting = [task_name(*trainers[rank], cluster) for rank in range(len(trainers)) if rank not in done]
        if waiting and not any(answers(cluster.cluster[job][index]) for job, index in
                               (trainers[r] for r in range(len(trainers)) if r not in done)):
            log.warning("parameter server %d: %s left without saying done", cluster.task_index, ", ".join(waiting))
            return
        if waiting and time.monotonic() - first_done > timeout:
            log.warning("parameter server %d: %s not done %g s after the first trainer; leaving",
                        cluster.task_index, ", ".join(waiting), timeout)
            return


def _await_exits(cluster: ClusterTask, timeout: float, stop: StopRequest) -> None:
    """Wait until no trainer's address answers any more (each process has exited), at most `timeout` s."""
    addresses = [cluster.cluster[job][index] for job, index in cluster.trainers]
    deadline = time.monotonic() + timeout
    while not stop.requested and time.monotonic() < deadline:
        if not any(answers(address, timeout=POLL_SECONDS) for address in addresses):
            return
        time.sleep(POLL_SECONDS)
    if not stop.requested:
        log.warning("parameter server %d: a trainer still runs %g s after saying it was done; leaving",
                    cluster.task_index, timeout)


def serve_parameters(cluster: ClusterTask, master: str, timeout: float = 120.0) -> int:
    """A parameter server holds variables for the trainers. It leaves once every trainer has said it is done
    (or is gone, or `timeout` seconds after the first was done) and every trainer's process has exited (or
    `timeout` seconds more), so none is left closing a session towards it; or on SIGINT/SIGTERM."""
    graph = tf.Graph()
    with graph.as_default():
        take_one = _done_queue(cluster, cluster.task_index).dequeue()
    log.info("parameter server %d: serving until %d trainers are done", cluster.task_index, len(cluster.trainers))
    with tf1.Session(master, graph=graph, config=cluster_session_config(cluster)) as session, \
            StopRequest("stopping") as stop:
        _await_done_tokens(session, take_one, cluster, timeout, stop)
        _await_exits(cluster, timeout, stop)
    log.info("parameter server %d: done", cluster.task_index)
    return 0


def _close_training_session(session: tf1.train.MonitoredSession, raw_session: tf1.Session) -> None:
    """Close the tf.Session first: that cancels the ops TensorFlow's own threads still wait in (the sync
    optimizer's token queue runner waits for gradients that will not come), so the MonitoredSession's close
    need not wait out its grace period for them, and they end quietly instead of with a traceback."""
    raw_session.close()
    session.close()


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
        self.watch: PeerWatch | None = None

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
        # Every trainer's server is up once all have arrived: from here a silent one has gone.
        watched = [("ps", i) for i in range(len(self.cluster.cluster["ps"]))]
        self.watch = PeerWatch(self.cluster, watched + (self.cluster.trainers if self.synchronous else []),
                               self.step_timeout)
        self.watch.start()

    def lost_peer(self) -> str | None:
        lost = self.watch.lost() if self.watch is not None else []
        if not lost:
            return None
        return (f"{', '.join(lost)} has not answered for {self.step_timeout:g} s (--step-timeout): stopped or "
                "unreachable")

    def step_failure(self, error: tf.errors.OpError) -> str | None:
        """A step that waited past --step-timeout, or lost its connection, names the tasks that no longer answer."""
        if not isinstance(error, tf.errors.DeadlineExceededError | tf.errors.UnavailableError | tf.errors.AbortedError):
            return None
        what = (f"a training step waited over {self.step_timeout:g} s (--step-timeout)"
                if isinstance(error, tf.errors.DeadlineExceededError) else "a training step lost a task of the cluster")
        silent = silent_tasks(self.cluster)
        if silent:
            return f"{what}: {', '.join(silent)} does not answer: stopped or unreachable"
        return f"{what}: every other task still answers, but one has stopped training or is stuck"

    def close(self, session: object, raw_session: tf1.Session) -> None:
        """Close the training session, then say done to the parameter servers, each bounded in time."""
        if self.watch is not None:
            self.watch.stop()
        bounded(lambda: _close_training_session(session, raw_session), CLOSE_TIMEOUT, "closing the training session")
        bounded(lambda: say_done(self.cluster, self.master, CLOSE_TIMEOUT), CLOSE_TIMEOUT,
                "telling the parameter servers this trainer is done")
