"""The server's log of its requests: a line for each failed one, a summary a minute for the rest.

A line per answered request (with -v) would add 300 lines a second to the log and to aocr.log at
full load, some 1.5 GB a day, and its lock is one more wait for every request thread. So an answered
request logs at DEBUG; a failed one (4xx or 5xx, a gRPC code other than OK) at INFO, as before; and
once a minute with traffic, one line counts the requests and gives their latency.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

log = logging.getLogger("aocr")

SUMMARY_INTERVAL_S = 60.0
# Characters of a request's method and path a failed request's log line shows: a client decides how long its
# path is (waitress takes headers of up to 256 KB), and a flood of 404s must not fill the disk.
LOGGED_REQUEST_CHARS = 200


def loggable(request: str) -> str:
    """`request` for one log line: cut to LOGGED_REQUEST_CHARS, control characters escaped."""
    cut = request if len(request) <= LOGGED_REQUEST_CHARS else request[:LOGGED_REQUEST_CHARS] + "..."
    return cut.encode("unicode_escape").decode("ascii")


class Traffic:
    """Counts the requests of both APIs and logs them (see the module's docstring)."""

    def __init__(self, interval_s: float = SUMMARY_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s, self._clock = interval_s, clock
        self._lock = threading.Lock()
        self._since = clock()
        self._latencies: list[float] = []
        self._failed = 0

    def record(self, request: str, outcome: str, ok: bool, seconds: float) -> None:
        """One request answered: `request` as "POST /v1/..." or "gRPC Predict", `outcome` its status."""
        (log.debug if ok else log.info)("%s %s %.1f ms", loggable(request), outcome, 1000 * seconds)
        with self._lock:
            self._latencies.append(seconds)
            self._failed += not ok
            now = self._clock()
            summary = self._take_summary(now) if now - self._since >= self.interval_s else None
        if summary:
            log.info("%s", summary)

    def flush(self) -> None:
        """Log the summary of the requests since the last one (at shutdown)."""
        with self._lock:
            summary = self._take_summary(self._clock())
        if summary:
            log.info("%s", summary)

    def _take_summary(self, now: float) -> str | None:
        """The summary line of the requests counted so far, which it starts counting afresh (lock held)."""
        latencies, failed, seconds = self._latencies, self._failed, now - self._since
        self._latencies, self._failed, self._since = [], 0, now
        if not latencies:
            return None
        count = len(latencies)
        p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
        return (f"last {seconds:.0f} s: {count} request{'s' * (count != 1)} ({count / max(seconds, 1.0):.1f} a "
                f"second), {failed} failed; latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")
