"""Progress of long jobs: a bar on a terminal, a log line every so often otherwise."""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger("aocr")


class Progress:
    """Counts work done; draws a bar when stderr is a terminal, else logs every `log_every` units
    (never with log_every=0, for callers that log progress themselves)."""

    def __init__(self, what: str, total: int | None = None, log_every: int = 100, initial: int = 0) -> None:
        self.what = what
        self.total = total
        self.log_every = log_every
        self.done = initial
        self._started = time.monotonic()
        self._bar = (tqdm(total=total, initial=initial, desc=what, unit="", dynamic_ncols=True, leave=False)
                     if sys.stderr.isatty() else None)

    def update(self, count: int = 1, **status: object) -> None:
        before = self.done
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
            if status:
                self._bar.set_postfix(status, refresh=False)
        elif self.log_every and self.done // self.log_every > before // self.log_every:
            of_total = f"/{self.total}" if self.total else ""
            extra = "".join(f", {k} {v}" for k, v in status.items())
            log.info("%s: %d%s%s", self.what, self.done, of_total, extra)

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
