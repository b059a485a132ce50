"""Request batching, as TF Serving's `--enable_batching`: concurrent requests run as one batch.

Each request's images join a queue as one task (a request larger than `max_batch_size` becomes several
tasks). There are no batch threads of their own: while a request waits, and one of `num_batch_threads`
batch slots is free, its own thread takes the queued tasks (oldest first, up to `max_batch_size` images),
runs them in one session run and hands each task its rows of the outputs. A batch starts once it is
full, or once `timeout_s` has passed since its first task was queued, as in TF Serving. A batch also
holds at most `max_batch_pixels` pixels as the images' headers declare them (but always one task), so
that requests each within their own limit cannot add up to a batch that decodes gigabytes.

With no `timeout_s` (the default) the wait adapts: a batch waits for as many requests as there were in
the server when the previous batch ended (its own and those queued then), from the moment a slot takes
it, for at most half the previous batch's run time (and ADAPTIVE_WAIT_CAP_S). Without it, N steady
clients split into groups that take turns (one runs while the other queues, and neither waits for the
other); with it, the clients answered a moment ago are waited for and all N run as one batch. A lone
client, alone in the server, never waits.

If a batch fails on bad input (one request's bytes are not an image), each of its tasks is run on its
own, so only the bad request gets the error. Every wait is bounded: a request waits at most its timeout
(DEADLINE_EXCEEDED), a full queue answers UNAVAILABLE at once, and `close` answers what is queued.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from aocr.core import defaults
from aocr.core.images import ImageHeader
from aocr.serving.status import Code, ServingError

log = logging.getLogger("aocr")

Outputs = dict[str, np.ndarray]
Headers = list[ImageHeader | None]  # per image; None where the size is not known (it counts no pixels)


ADAPTIVE_WAIT_CAP_S = 0.025


@dataclass(frozen=True)
class BatchOptions:
    """TF Serving's batching parameters, by their names there."""

    max_batch_size: int = 32
    timeout_s: float | None = None  # batch_timeout_micros / 1e6; None: the adaptive wait
    num_batch_threads: int = 1
    max_enqueued_images: int = 4096  # max_enqueued_batches * max_batch_size
    max_batch_pixels: int = defaults.MAX_REQUEST_PIXELS


@dataclass
class _Task:
    images: np.ndarray  # [n] image bytes, 1 <= n <= max_batch_size
    headers: Headers
    enqueued: float = field(default_factory=time.monotonic)
    future: Future = field(default_factory=Future)
    queued: bool = True

    @property
    def pixels(self) -> int:
        return sum(header.pixels for header in self.headers if header is not None)


class Batcher:
    """Runs `run` on batches formed from concurrent `submit` calls, on the submitting threads."""

    def __init__(self, run: Callable[[np.ndarray, Headers], Outputs], options: BatchOptions, name: str = "") -> None:
        self.options = options
        self.name = name
        self._run = run
        self._queue: deque[_Task] = deque()
        self._queued_images = 0
        self._running = 0  # batch slots in use
        self._closing = False
        self._expected_tasks = 1  # tasks running or queued when the last batch ended, and its run time
        self._last_run_s = 0.0
        self._lock = threading.Condition()

    def submit(self, images: np.ndarray, timeout: float, headers: Headers | None = None) -> Outputs:
        """Outputs for `images` ([N] bytes, N >= 1), waiting at most `timeout` seconds; `headers`: the N
        images' headers, which `run` is given with them."""
        size = self.options.max_batch_size
        headers = headers if headers is not None else [None] * len(images)
        tasks = [_Task(images[start:start + size], headers[start:start + size])
                 for start in range(0, len(images), size)]
        with self._lock:
            if self._closing:
                raise ServingError(Code.UNAVAILABLE, "The server is shutting down")
            if self._queued_images + len(images) > self.options.max_enqueued_images:
                raise ServingError(Code.UNAVAILABLE,
                                   "The batch scheduling queue to which this task was submitted is full")
            self._queue.extend(tasks)
            self._queued_images += len(images)
            self._lock.notify_all()
        deadline = time.monotonic() + timeout
        try:
            for task in tasks:
                self._wait(task, deadline)
            results = [task.future.result(timeout=0) for task in tasks]
        finally:
            self._withdraw(tasks)
        if len(results) == 1:
            return results[0]
        return {key: np.concatenate([result[key] for result in results]) for key in results[0]}

    def _withdraw(self, tasks: list[_Task]) -> None:
        """Take a request's tasks that never ran out of the queue (it stopped waiting for them)."""
        with self._lock:
            for task in tasks:
                if task.queued:
                    self._queue.remove(task)
                    self._queued_images -= len(task.images)
                    task.queued = False
                task.future.cancel()  # no-op for a task that ran

    def close(self, timeout: float) -> None:
        """Refuse new requests and let the queued ones run (within `timeout` seconds); fail what is left."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closing = True
            self._lock.notify_all()
            while (self._queue or self._running) and time.monotonic() < deadline:
                self._lock.wait(max(0.0, min(1.0, deadline - time.monotonic())))
            left, self._queue = list(self._queue), deque()
            self._queued_images = 0
            for task in left:
                task.queued = False  # out of the queue: their requests must not withdraw them again
        for task in left:
            if task.future.set_running_or_notify_cancel():
                task.future.set_exception(ServingError(Code.UNAVAILABLE, "The server is shutting down"))

    def _wait(self, task: _Task, deadline: float) -> None:
        """Until `task` is answered: run a batch of queued tasks whenever a slot is free and it still waits."""
        while not task.future.done():
            with self._lock:
                batch = None
                if task.queued and self._running < self.options.num_batch_threads:
                    self._running += 1
                    batch = self._take_batch()
                elif not task.future.done():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline Exceeded")
                    self._lock.wait(min(remaining, 1.0))
            if batch is not None:
                try:
                    self._execute(batch)
                finally:
                    with self._lock:
                        self._running -= 1
                        self._lock.notify_all()

    def _fill_target(self) -> tuple[float, float]:
        """(when the batch starts at the latest, how many tasks it waits for), the lock held."""
        if self.options.timeout_s is not None:
            return self._queue[0].enqueued + self.options.timeout_s, float("inf")
        wait = min(ADAPTIVE_WAIT_CAP_S, self._last_run_s / 2)
        return time.monotonic() + wait, self._expected_tasks

    def _take_batch(self) -> list[_Task]:
        """Queued tasks for one batch (the lock is held; [] when another slot took them meanwhile)."""
        options = self.options
        fill_until, wanted_tasks = self._fill_target()
        while (self._queue and self._queued_images < options.max_batch_size and len(self._queue) < wanted_tasks
               and not self._closing):
            remaining = fill_until - time.monotonic()
            if remaining <= 0:
                break
            self._lock.wait(remaining)
        batch, size, pixels = [], 0, 0
        while self._queue and size + len(self._queue[0].images) <= options.max_batch_size and (
                not batch or pixels + self._queue[0].pixels <= options.max_batch_pixels):
            task = self._queue.popleft()
            task.queued = False
            self._queued_images -= len(task.images)
            if task.future.set_running_or_notify_cancel():
                batch.append(task)
                size, pixels = size + len(task.images), pixels + task.pixels
        return batch

    def _execute(self, batch: list[_Task]) -> None:
        if not batch:
            return
        images = batch[0].images if len(batch) == 1 else np.concatenate([task.images for task in batch])
        log.debug("batch%s: %d images from %d requests", self.name, len(images), len(batch))
        started = time.monotonic()
        try:
            outputs = self._run(images, [header for task in batch for header in task.headers])
        except ServingError as e:
            if len(batch) > 1 and e.code == Code.INVALID_ARGUMENT:  # find the bad request: each on its own
                for task in batch:
                    self._execute([task])
                return
            for task in batch:
                task.future.set_exception(e)
            return
        except Exception:  # a fault, not the request's: logged, and the batch thread goes on
            log.exception("a batch of %d images failed", len(images))
            for task in batch:
                task.future.set_exception(ServingError(Code.INTERNAL, "internal error while running the batch"))
            return
        with self._lock:
            self._expected_tasks, self._last_run_s = len(batch) + len(self._queue), time.monotonic() - started
        start = 0
        for task in batch:
            end = start + len(task.images)
            task.future.set_result({key: value[start:end] for key, value in outputs.items()})
            start = end
