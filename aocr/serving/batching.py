"""Request batching, as TF Serving's `--enable_batching`: concurrent requests run as one batch.

Each request's images join a queue as one task (a request larger than `max_batch_size` becomes several
tasks). A batch thread takes queued tasks, up to `max_batch_size` images in all, once the batch is full
or `timeout_s` has passed since its first task was queued; it runs them in one session run and hands
each task its own rows of the outputs. With timeout 0 (the default) a lone request runs at once, and
requests that arrive while the threads are busy wait in the queue and run together.

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
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import numpy as np

from aocr.serving.status import Code, ServingError

log = logging.getLogger("aocr")

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class BatchOptions:
    """TF Serving's batching parameters, by their names there."""

    max_batch_size: int = 32
    timeout_s: float = 0.0  # batch_timeout_micros / 1e6
    num_batch_threads: int = 2
    max_enqueued_images: int = 4096  # max_enqueued_batches * max_batch_size


@dataclass
class _Task:
    images: np.ndarray  # [n] image bytes, 1 <= n <= max_batch_size
    enqueued: float = field(default_factory=time.monotonic)
    future: Future = field(default_factory=Future)


class Batcher:
    """Runs `run` on batches formed from concurrent `submit` calls; threads start at once."""

    def __init__(self, run: Callable[[np.ndarray], Outputs], options: BatchOptions, name: str = "") -> None:
        self.options = options
        self._run = run
        self._queue: deque[_Task] = deque()
        self._queued_images = 0
        self._closing = False
        self._lock = threading.Condition()
        self._threads = [threading.Thread(target=self._work, name=f"batch{name}-{i}", daemon=True)
                         for i in range(options.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, images: np.ndarray, timeout: float) -> Outputs:
        """Outputs for `images` ([N] bytes, N >= 1), waiting at most `timeout` seconds."""
        size = self.options.max_batch_size
        tasks = [_Task(images[start:start + size]) for start in range(0, len(images), size)]
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
            results = [task.future.result(timeout=max(0.0, deadline - time.monotonic())) for task in tasks]
        except FutureTimeout:
            raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        finally:
            for task in tasks:
                task.future.cancel()  # no-op for tasks that ran; frees queue room for those that did not
        if len(results) == 1:
            return results[0]
        return {key: np.concatenate([result[key] for result in results]) for key in results[0]}

    def close(self, timeout: float) -> None:
        """Refuse new requests, answer the queued ones (within `timeout` seconds), stop the threads."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left, self._queue = list(self._queue), deque()
            self._queued_images = 0
        for task in left:
            if task.future.set_running_or_notify_cancel():
                task.future.set_exception(ServingError(Code.UNAVAILABLE, "The server is shutting down"))

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                self._execute(batch)

    def _next_batch(self) -> list[_Task] | None:
        """Queued tasks for one batch ([] when others took them first), or None once closed and empty."""
        options = self.options
        with self._lock:
            while not self._queue:
                if self._closing:
                    return None
                self._lock.wait(timeout=1.0)
            deadline = self._queue[0].enqueued + options.timeout_s
            while self._queue and self._queued_images < options.max_batch_size and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
            batch, size = [], 0
            while self._queue and size + len(self._queue[0].images) <= options.max_batch_size:
                task = self._queue.popleft()
                self._queued_images -= len(task.images)
                if task.future.set_running_or_notify_cancel():  # False: its request gave up waiting
                    batch.append(task)
                    size += len(task.images)
            return batch

    def _execute(self, batch: list[_Task]) -> None:
        images = batch[0].images if len(batch) == 1 else np.concatenate([task.images for task in batch])
        try:
            outputs = self._run(images)
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
        start = 0
        for task in batch:
            end = start + len(task.images)
            task.future.set_result({key: value[start:end] for key, value in outputs.items()})
            start = end
