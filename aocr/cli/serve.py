"""`aocr serve`: the flags -> aocr.serving.server.serve. Like the server, it imports no model or export code."""

from __future__ import annotations

import argparse

from aocr.core import options
from aocr.serving.server import ServeOptions, serve


def options_of(args: argparse.Namespace) -> ServeOptions:
    """The server's options as the flags give them, by the fields their rows in aocr.core.options name."""
    return ServeOptions(export_path=args.export_path, **options.values_of(args, options.SERVING))


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT, then drain and exit 0."""
    return serve(options_of(args))
