"""Running one served batch as shards side by side: one per CPU core, each op on one thread.

Most of a served batch's ops are small (the encoder's and the decoder's steps), and on a CPU
TensorFlow's intra-op threads split each of them at more cost than gain. With one thread per op
and the batch cut into one shard per core, images of similar width together (less padding), the
cores work on separate shards instead, with less time lost to splitting and waiting
(benchmarks/serve_benchmark.py measures both). Where a GPU computes, batches run whole.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
import tensorflow as tf

from aocr.core import defaults

Outputs = dict[str, np.ndarray]


def cgroup_cpu_limit(root: str = "/sys/fs/cgroup") -> float | None:
    """The CPUs a container's quota allows (cgroup v2 `cpu.max`, or v1 `cpu/cpu.cfs_quota_us` and
    `cpu.cfs_period_us`), or None without a quota: `docker --cpus 2` on a 64-core host gives 2.0."""
    base = Path(root)
    try:
        quota, period = (base / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (base / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (base / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        allowed = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):  # "max", or a file in a form we do not know: no quota
        return None
    return allowed if allowed > 0 else None


def cpu_shards() -> int:
    """How many shards a batch runs as: the CPU cores this process may use (its affinity, within a container's
    quota), or 1 where a GPU is visible."""
    if tf.config.list_physical_devices("GPU"):
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    return max(1, min(cores, math.ceil(quota)) if quota else cores)


def one_thread_per_op(config: tf.compat.v1.ConfigProto, shards: int) -> None:
    """Set `config` for `shards` runs side by side, each op on one thread (no change for 1 shard)."""
    if shards > 1:
        config.intra_op_parallelism_threads = 1
        config.inter_op_parallelism_threads = shards


def cut_by_cost(order: np.ndarray, widths: Sequence[float], height: int, budget: float) -> list[np.ndarray]:
    """`order` (image indices, narrowest first) cut into consecutive parts whose images, padded to the part's
    widest, hold at most `budget` pixels at `height` (an image over it alone)."""
    parts, start = [], 0
    for end in range(1, len(order) + 1):
        if end < len(order) and (end + 1 - start) * widths[order[end]] * height <= budget:
            continue
        parts.append(order[start:end])
        start = end
    return parts


class Shards:
    """Runs `run` over a batch of images as up to `count` shards at once, answers in input order."""

    def __init__(self, count: int, budget: int = defaults.MAX_RUN_MODEL_PIXELS) -> None:
        self.count = count
        self.budget = budget  # pixels at the model's height, of all shards at once (padding included)
        self._pool = ThreadPoolExecutor(count - 1, thread_name_prefix="aocr-shard") if count > 1 else None
        self._in_flight: set[Future] = set()

    def run(self, run: Callable[[np.ndarray], Outputs], images: np.ndarray, widths: Sequence[float],
            height: int) -> Outputs:
        """run(images), as one call for a lone image; otherwise in shards of similar widths, up to `count` at once.

        images: [N] of what `run` takes a part of: encoded image bytes, or the indices of decoded images (another
        rank runs whole); widths: [N] each image's width as the model reads it at `height`, by which the images
        are cut: into `count` shards, and further where a shard would feed the model more than budget / count
        pixels (images padded to the shard's widest), those run `count` at a time. Every output must have the
        images along its first axis. If a shard fails, the others of its round finish, then its error is raised.
        """
        if images.ndim != 1 or len(images) <= 1:
            return run(images)
        order = np.argsort(widths, kind="stable")
        parts = [part for share in np.array_split(order, min(self.count, len(images)))
                 for part in cut_by_cost(share, widths, height, self.budget / self.count)]
        results = []
        for start in range(0, len(parts), self.count):
            results += self._run_together(run, [images[part] for part in parts[start:start + self.count]])
        in_input_order = np.argsort(np.concatenate(parts), kind="stable")
        return {key: np.concatenate([result[key] for result in results])[in_input_order] for key in results[0]}

    def _run_together(self, run: Callable[[np.ndarray], Outputs], shards: list[np.ndarray]) -> list[Outputs]:
        """run(shard) for each shard at once: the first in this thread, the others on the pool."""
        pending = [self._pool.submit(run, shard) for shard in shards[1:]] if self._pool else []
        for future in pending:
            self._in_flight.add(future)
            future.add_done_callback(self._in_flight.discard)
        try:
            first = run(shards[0])
        finally:  # a failed shard's error waits for the others to be done with the session
            wait(pending)
        return [first, *(future.result() for future in pending)]

    def close(self, timeout: float) -> bool:
        """Stop the threads once the running shards are done, waiting at most `timeout` seconds for them;
        returns whether they were all done."""
        if self._pool is None:
            return True
        self._pool.shutdown(wait=False, cancel_futures=True)
        _, running = wait(list(self._in_flight), timeout=timeout)
        return not running
