"""Ctrl-C and SIGTERM as a request to save and stop, for the long-running jobs."""

from __future__ import annotations

import logging
import signal

log = logging.getLogger("aocr")


class StopRequest:
    """Turns the first SIGINT or SIGTERM into a request to save and stop; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("%s received: saving a checkpoint and stopping (Ctrl-C again to stop at once)",
                    signal.Signals(signum).name)
