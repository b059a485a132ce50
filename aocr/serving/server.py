"""`aocr serve`'s server (its flags: aocr.cli.serve): an exported SavedModel behind TensorFlow Serving's REST
API, for one model.

    GET  /v1/models/NAME[/versions/V | /labels/L]            model status
    GET  /v1/models/NAME[/versions/V | /labels/L]/metadata   signature definitions
    POST /v1/models/NAME[/versions/V | /labels/L]:predict    {"instances": [...]} or {"inputs": ...}

Routing, status codes and error texts are TF Serving's (aocr.serving.rest); a client written for
tensorflow_model_server works unchanged. TF Serving's gRPC API (PredictionService: Predict and
GetModelMetadata; ModelService: GetModelStatus) listens on --grpc-port where the
`tensorflow-serving-api` package is installed (aocr.serving.grpc_api). Concurrent requests run together
in batches, as with TF Serving's --enable_batching (aocr.serving.batching). SIGTERM or Ctrl-C stops
accepting requests, answers those in flight, then exits. This module needs only a SavedModel: it
imports no model or export code.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aocr.core import defaults
from aocr.core.errors import AocrError
from aocr.core.precision import serving_precision
from aocr.core.signals import flush_logs, forced_exit_status
from aocr.serving.batching import BatchOptions
from aocr.serving.rest import App
from aocr.serving.servables import Servable, load_servable, parse_labels
from aocr.serving.traffic import Traffic

log = logging.getLogger("aocr")

REQUEST_TIMEOUT_S = 30.0  # TF Serving's --rest_api_timeout_in_ms default
DRAIN_TIMEOUT_S = 30.0  # longest wait for requests in flight once asked to stop
# Threads for each API's requests. A request holds its thread while it waits for its batch, so there are
# enough for a full batch running and the next one filling; fewer would cap the batches, and with them the
# throughput, at the thread count.
MIN_REQUEST_THREADS = 16
MAX_REQUEST_THREADS = 256
DEFAULT_GRPC_PORT = 8500  # as tensorflow_model_server's --port
MAX_ENQUEUED_IMAGES = 4096  # images waiting for a batch; more are refused with UNAVAILABLE (HTTP 503)
ARRIVAL_TIMEOUT_S = 60.0  # longest a request (headers and body) may take to arrive; then its connection is closed
IDLE_TIMEOUT_S = 15.0  # longest a connection may stay open without a request (before one or between two)
CONNECTION_LIMIT = 500  # open REST connections; waitress accepts no more until one closes
BUSY_IDLE_TIMEOUT_S = 1.0  # the idle limit once over half of CONNECTION_LIMIT are open


@dataclass(frozen=True)
class ServeOptions:
    """What `aocr serve` serves and how: its flags, as plain values (aocr.cli.serve reads them)."""

    export_path: str  # the directory `aocr export` wrote
    model_name: str = defaults.SERVE_MODEL_NAME
    host: str = defaults.SERVE_HOST
    port: int = defaults.SERVE_PORT  # the REST API's
    grpc_port: int | None = None  # 0: no gRPC; None: DEFAULT_GRPC_PORT where the gRPC packages are installed
    version: int | None = None  # the version to serve (None: the newest)
    version_labels: tuple[str, ...] = ()  # "LABEL=VERSION", as --version-label takes them
    max_request_bytes: int = defaults.MAX_REQUEST_BYTES
    enable_batching: bool = True
    max_batch_size: int = defaults.SERVE_MAX_BATCH_SIZE
    batch_timeout_micros: int | None = None  # None: the adaptive wait
    num_batch_threads: int = defaults.SERVE_BATCH_THREADS
    precision: str = defaults.INFERENCE_PRECISIONS[0]  # "auto", "float32" or "bfloat16" (aocr.core.precision)


class SlowArrivals:
    """Closes a connection whose request has been arriving for more than `limit` seconds.

    Waitress reads a request on its event loop and gives it to a worker only once it is complete, so a
    client that sends its body slowly holds no worker; but it holds a connection (of CONNECTION_LIMIT),
    and waitress's own idle timeout (120 s) starts again with every byte: a client that trickles a byte
    a minute would hold one for ever. A connection that sends nothing at all is closed after `idle_limit`,
    or after `busy_idle_limit` once more than half of `connections` are open, so that idle connections
    cannot fill waitress's limit either. Checked on the event loop's thread, at most once a second; the
    closed connections are logged as one line a check.
    """

    def __init__(self, limit: float, idle_limit: float, connections: int = CONNECTION_LIMIT,
                 busy_idle_limit: float = BUSY_IDLE_TIMEOUT_S) -> None:
        self.limit, self.idle_limit = limit, idle_limit
        self.connections, self.busy_idle_limit = connections, busy_idle_limit
        # a partial request, or an idle connection (no request begun) -> when it was first seen so
        self.first_seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.checked = 0.0

    def check(self, channels: Iterable[object], now: float) -> None:
        if now - self.checked < 1.0:
            return
        self.checked = now
        from waitress.channel import HTTPChannel

        open_channels = [channel for channel in channels if isinstance(channel, HTTPChannel)]
        idle_limit = self.busy_idle_limit if len(open_channels) > self.connections // 2 else self.idle_limit
        closed: Counter[str] = Counter()
        for channel in open_channels:
            if channel.will_close or channel.requests:  # closing, or answering
                self.first_seen.pop(channel, None)
                continue
            request = getattr(channel, "request", None)
            if request is not None:
                self.first_seen.pop(channel, None)
            key, limit = (request, self.limit) if request is not None else (channel, idle_limit)
            if now - self.first_seen.setdefault(key, now) > limit:
                closed[f"its request took over {limit:.0f} s to arrive" if request is not None
                       else f"it sent nothing for {limit:.0f} s"] += 1
                channel.will_close = True  # the loop closes it on its next turn
        for reason, count in closed.items():
            log.warning("closed %s: %s", "a connection" if count == 1 else f"{count} connections", reason)


def serve_rest_until(server: object, stopping: threading.Event) -> None:
    """Run waitress's event loop until `stopping` is set (each turn waits at most a second), closing the
    connections of requests that take over ARRIVAL_TIMEOUT_S to arrive."""
    from waitress import wasyncore

    slow = SlowArrivals(ARRIVAL_TIMEOUT_S, IDLE_TIMEOUT_S)
    while not stopping.is_set() and server._map:
        wasyncore.loop(timeout=1.0, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)
        slow.check(list(server._map.values()), time.monotonic())


def drain_rest(server: object, timeout: float) -> None:
    """Close the listening socket, then keep the loop turning until every request in flight is answered."""
    from waitress import wasyncore
    from waitress.channel import HTTPChannel

    wasyncore.dispatcher.close(server)  # the listener only: the trigger stays, so answers still go out
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        channels = [c for c in server._map.values() if isinstance(c, HTTPChannel)]
        if all(not c.requests and not c.total_outbufs_len for c in channels):
            return
        wasyncore.loop(timeout=0.05, map=server._map, use_poll=server.adj.asyncore_use_poll, count=1)
    log.warning("requests still in flight after %.0f s; closing anyway", timeout)


def request_threads(batching: BatchOptions | None) -> int:
    """Threads for each API's requests: room for `num_batch_threads` full batches and one filling."""
    if batching is None:
        return MIN_REQUEST_THREADS
    wanted = (batching.num_batch_threads + 1) * batching.max_batch_size
    return min(MAX_REQUEST_THREADS, max(MIN_REQUEST_THREADS, wanted))


def start_rest(servable: Servable, options: ServeOptions, threads: int, traffic: Traffic) -> object:
    """A waitress server for the REST API with `threads` request threads, listening but not yet serving."""
    from waitress.server import create_server

    app = App(servable, options.max_request_bytes, REQUEST_TIMEOUT_S, traffic)
    try:
        return create_server(app, host=options.host, port=options.port, threads=threads,
                             max_request_body_size=options.max_request_bytes + 1024,
                             connection_limit=CONNECTION_LIMIT)
    except OSError as e:
        raise AocrError(f"cannot listen on {options.host}:{options.port} ({e.strerror}); "
                        "pick another --port") from None


def start_grpc(servable: Servable, options: ServeOptions, threads: int, traffic: Traffic) -> Any:
    """TF Serving's gRPC API on --grpc-port with `threads` request threads (None with --grpc-port 0, or without
    --grpc-port where its packages are missing). A port asked for that cannot be served is an error."""
    if options.grpc_port == 0:
        return None
    port = DEFAULT_GRPC_PORT if options.grpc_port is None else options.grpc_port
    try:
        from aocr.serving import grpc_api
    except ImportError as e:
        if options.grpc_port is not None:
            raise AocrError(f"--grpc-port {port}: gRPC needs packages that are not installed ({e}); "
                            "`pip install 'aocr[grpc]'` adds them, or --grpc-port 0 serves REST alone") from None
        log.warning("gRPC is off (%s): `pip install 'aocr[grpc]'` adds it (tensorflow-serving-api and grpcio); "
                    "the REST API serves as usual", e)
        return None
    server = grpc_api.start(servable, options.host, port, options.max_request_bytes, threads, REQUEST_TIMEOUT_S,
                            traffic)
    log.info("gRPC API (TF Serving's PredictionService and ModelService) at %s:%d", options.host, port)
    return server


def batch_options(options: ServeOptions) -> BatchOptions | None:
    """The batching flags (None with --no-enable-batching)."""
    if not options.enable_batching:
        return None
    timeout = options.batch_timeout_micros
    if timeout is not None and timeout < 0:
        raise AocrError("--batch-timeout-micros must be 0 or more")
    return BatchOptions(max_batch_size=options.max_batch_size, timeout_s=None if timeout is None else timeout / 1e6,
                        num_batch_threads=options.num_batch_threads,
                        max_enqueued_images=max(MAX_ENQUEUED_IMAGES, options.max_batch_size))


def stop_on_signals(rest_server: Any) -> threading.Event:
    """SIGTERM and SIGINT handlers for the server: the first sets the returned event (and wakes the REST
    server's loop), so that the requests in flight are answered before it stops; a second one ends the
    process at once, with the status of a forced stop, whatever is still waiting."""
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if stopping.is_set():
            log.error("%s received again: stopping at once, without answering the requests in flight (exit status "
                      "%d)", name, forced_exit_status(signum))
            flush_logs()
            os._exit(forced_exit_status(signum))
        log.info("%s received: answering the requests in flight, then stopping (again: at once)", name)
        stopping.set()
        rest_server.pull_trigger()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return stopping


# glibc's M_MMAP_THRESHOLD: allocations from this size on get pages of their own, given back when freed.
MALLOC_MMAP_THRESHOLD = -3
LARGE_ALLOCATION_BYTES = 1024 * 1024


def give_back_large_blocks() -> None:
    """Make glibc hand the memory of large tensors back to the system when they are freed. By default it raises
    its threshold for that after the first large block is freed, and from then on keeps what a large request's
    tensors held in its heaps, so the server's resident memory stays at the high mark of the largest request.
    Elsewhere than glibc, nothing is done."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(MALLOC_MMAP_THRESHOLD, LARGE_ALLOCATION_BYTES)
    except (OSError, AttributeError):
        log.debug("no glibc: the allocator keeps its own thresholds")


def serve(options: ServeOptions) -> int:
    """Serve until SIGTERM or SIGINT, then drain and exit 0."""
    give_back_large_blocks()
    labels = parse_labels(options.version_labels or [])
    batching = batch_options(options)
    precision = serving_precision(options.precision)
    servable = load_servable(options.export_path, options.model_name, options.version, labels, batching, precision)
    grpc_server = rest_server = None
    traffic = Traffic()
    try:
        threads = request_threads(batching)
        grpc_server = start_grpc(servable, options, threads, traffic)
        rest_server = start_rest(servable, options, threads, traffic)
    except AocrError:
        if grpc_server is not None:
            grpc_server.stop(grace=None)
        servable.close(timeout=0.0)
        raise
    stopping = stop_on_signals(rest_server)
    served = ", ".join(str(number) for number in sorted(servable.versions, reverse=True))
    label_text = "".join(f", label {label}={number}" for label, number in sorted(labels.items()))
    if batching is not None:
        wait = "adaptive wait" if batching.timeout_s is None else f"{options.batch_timeout_micros} µs timeout"
        log.info("batching: up to %d images, %s, %d batch threads, %d request threads", batching.max_batch_size,
                 wait, batching.num_batch_threads, threads)
    shards = servable.latest.shards.count
    log.info("serving model '%s' version %s%s from %s at http://%s:%s/v1/models/%s, in %s%s%s",
             options.model_name, served, label_text, options.export_path, options.host, rest_server.effective_port,
             options.model_name, precision,
             " (--precision float32 answers exactly as tensorflow_model_server)" if precision == "bfloat16" else "",
             f"; each batch runs as up to {shards} shards, one per CPU core" if shards > 1 else "")
    try:
        serve_rest_until(rest_server, stopping)
        grpc_stopped = grpc_server.stop(grace=DRAIN_TIMEOUT_S) if grpc_server is not None else None
        drain_rest(rest_server, DRAIN_TIMEOUT_S)
        if grpc_stopped is not None:
            grpc_stopped.wait(DRAIN_TIMEOUT_S)
    finally:
        from waitress import wasyncore

        rest_server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        wasyncore.close_all(rest_server._map)
        servable.close(DRAIN_TIMEOUT_S)
        traffic.flush()
    return 0
