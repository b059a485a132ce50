"""Ctrl-C and SIGTERM as a request to save and stop, for the long-running jobs; a second one stops at once.

Python runs a signal handler only between bytecodes of the main thread, so while that thread
waits inside TensorFlow (a training step, a save, a session close towards a vanished peer) a
handler would wait too. The signals are therefore watched from a thread: Python's C-level
handler writes each signal's number to a wakeup socket as it arrives (signal.set_wakeup_fd),
and the watcher thread, blocked on that socket, sees it at once. The first signal sets
`requested`; a second one of either kind logs why and ends the process with os._exit at once,
with the status a shell gives a process killed by that signal (FORCED_EXIT_BASE + its number:
130 after Ctrl-C, 143 after SIGTERM), never the 0 of a finished or saved-and-stopped run.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from typing import ClassVar

log = logging.getLogger("aocr")

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# A forced stop exits with this plus the signal's number, as a shell reports a process killed by it.
FORCED_EXIT_BASE = 128
_CLOSE = b"\0"  # written by __exit__ to end the watcher; no signal has number 0


def forced_exit_status(signum: int) -> int:
    """The exit status of a process stopped at once by a second `signum`."""
    return FORCED_EXIT_BASE + signum


def flush_logs() -> None:
    """Flush the log handlers and the standard streams, before an os._exit that would lose their buffers."""
    for logger in (log, logging.getLogger()):
        for handler in logger.handlers:
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing more can be said there
            continue


class StopRequest:
    """Turns the first SIGINT or SIGTERM into a request to stop (`requested`); a second one of either
    kind ends the process at once, even while the main thread is blocked inside TensorFlow.

    Used as a context manager in the main thread. `what` is the action a first signal asks
    for (its message says it); with None there is nothing to save, and the first signal
    already ends the process at once. Nested ones share the outermost one's watcher and
    request, and their `what` holds while they are entered: a command can guard its whole
    run with StopRequest(None) and its training loop with StopRequest().
    """

    _outermost: ClassVar[StopRequest | None] = None

    def __init__(self, what: str | None = "saving a checkpoint and stopping") -> None:
        self.what = what
        self._requested = threading.Event()
        self._shared: StopRequest | None = None
        self._actions: list[str | None] = [what]  # the outermost's: the innermost entered one's `what` last
        self._previous: dict[int, object] = {}
        self._previous_wakeup = -1
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._watcher: threading.Thread | None = None

    @property
    def requested(self) -> bool:
        return (self._shared or self)._requested.is_set()

    def request(self) -> None:
        """Ask for a stop as a first signal does."""
        (self._shared or self)._requested.set()

    def __enter__(self) -> StopRequest:
        outer = StopRequest._outermost
        if outer is not None:
            self._shared = outer
            outer._actions.append(self.what)
            return self
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach only the main thread's handlers: nothing to watch from here
        reader, writer = socket.socketpair()
        writer.setblocking(False)  # set_wakeup_fd requires it: the C handler must never block
        self._sockets = (reader, writer)
        self._watcher = threading.Thread(target=self._watch, name="aocr-stop-watcher", daemon=True)
        self._watcher.start()
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
            # Restart system calls the signal interrupts: TensorFlow's C++ would take EINTR for an error
            # (a failed read, a failed save), and the watcher decides what a signal means.
            signal.siginterrupt(sig, False)
        self._previous_wakeup = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        StopRequest._outermost = self
        return self

    def __exit__(self, *exc: object) -> None:
        if self._shared is not None:
            self._shared._actions.pop()
            self._shared = None
            return
        if self._sockets is None:
            return
        signal.set_wakeup_fd(self._previous_wakeup)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        StopRequest._outermost = None
        reader, writer = self._sockets
        writer.setblocking(True)
        writer.send(_CLOSE)
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        reader.close()
        writer.close()
        self._sockets = None

    def _handle(self, signum: int, frame: object) -> None:
        """Python's part, run whenever the main thread gets back to Python: the watcher does the work."""

    def _watch(self) -> None:
        reader = self._sockets[0]
        while True:
            try:
                received = reader.recv(64)
            except OSError:
                return
            if not received or _CLOSE[0] in received:
                return
            for signum in received:
                if signum in SIGNALS:
                    self._on_signal(signal.Signals(signum))

    def _on_signal(self, sig: signal.Signals) -> None:
        action = self._actions[-1]
        if action is not None and not self._requested.is_set():
            self._requested.set()
            log.warning("%s received: %s (Ctrl-C or SIGTERM again stops at once, without saving)", sig.name, action)
            return
        status = forced_exit_status(sig)
        if action is None and not self._requested.is_set():
            log.error("%s received: stopping at once (exit status %d)", sig.name, status)
        else:
            log.error("%s received again: stopping at once, without saving (exit status %d: a forced stop)",
                      sig.name, status)
        flush_logs()
        os._exit(status)
