"""`aocr serve`: the flags -> aocr.serving.server.serve. Like the server, it imports no model or export code."""

from __future__ import annotations

import argparse

from aocr.serving.server import ServeOptions, serve


def options_of(args: argparse.Namespace) -> ServeOptions:
    """The server's options as the flags give them."""
    return ServeOptions(
        export_path=args.export_path, model_name=args.model_name, host=args.host, port=args.port,
        grpc_port=args.grpc_port, version=args.export_version, version_labels=tuple(args.version_label or ()),
        max_request_bytes=args.max_request_bytes, enable_batching=args.enable_batching,
        max_batch_size=args.max_batch_size, batch_timeout_micros=args.batch_timeout_micros,
        num_batch_threads=args.num_batch_threads, precision=args.precision)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT, then drain and exit 0."""
    return serve(options_of(args))
