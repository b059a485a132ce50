"""The command line: `aocr COMMAND` parses its flags (aocr.cli.parser), sets up logging and runs the command's
module, one per verb in this package, each a run(args) that turns the flags into the library's own values.

Only this package reads argparse's Namespace; the library below it (aocr.training, aocr.inference, aocr.export,
aocr.serving, aocr.data, aocr.model, aocr.core) takes plain values and dataclasses.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import logging.handlers
import os
import sys

from aocr.cli.parser import build_parser, check_decoding_flags
from aocr.core.errors import AocrError

__all__ = ["COMMANDS", "build_parser", "main", "note_ignored_flags", "run_command"]

log = logging.getLogger("aocr")
LOG_FILE_BYTES = 50 * 1024 * 1024
LOG_FILE_BACKUPS = 3

# Verb -> module whose run(args) does the work; imported only when that verb runs,
# so `aocr --help` does not pay for importing TensorFlow.
COMMANDS = {
    "dataset": "aocr.cli.dataset",
    "train": "aocr.cli.train",
    "test": "aocr.cli.test",
    "predict": "aocr.cli.predict",
    "export": "aocr.cli.export",
    "serve": "aocr.cli.serve",
}



def note_ignored_flags(args: argparse.Namespace) -> list[str]:
    """Log one line per flag that was accepted but has no effect on this subcommand; returns the flags."""
    flags = list(dict.fromkeys(getattr(args, "ignored_flags", None) or []))
    for flag in flags:
        log.info("%s has no effect on %s; ignored", flag, args.command)
    return flags


def setup_logging(verbose: bool, log_path: str) -> None:
    """Log lines to stderr and, like the original, to a log file, which rolls over at LOG_FILE_BYTES (a
    server's log must not fill the disk): the last LOG_FILE_BACKUPS files are kept as aocr.log.1, .2..."""
    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger("aocr")
    root.setLevel(level)
    root.handlers.clear()
    root.propagate = False
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root.addHandler(console)
    if log_path:
        try:
            handler = logging.handlers.RotatingFileHandler(log_path, maxBytes=LOG_FILE_BYTES,
                                                           backupCount=LOG_FILE_BACKUPS, encoding="utf-8")
        except OSError as e:
            root.warning("cannot write the log file %s (%s); logging to the terminal only", log_path, e.strerror)
        else:
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            root.addHandler(handler)


def import_tensorflow_quietly() -> None:
    """Keep TensorFlow's native log off the terminal: a CPU-only run would otherwise print
    `failed call to cuInit` and oneDNN lines that users read as errors, burying aocr's own.

    Two sources: lines printed while TensorFlow loads, before any log level applies (muted
    by pointing stderr at /dev/null during the import), and ERROR lines printed later, such
    as cuInit at the first session (silenced by TF_CPP_MIN_LOG_LEVEL=3, which TensorFlow
    reads once, so it must be set before the import). A user's own TF_CPP_MIN_LOG_LEVEL wins.
    Failures still reach the user: TensorFlow raises them as Python exceptions.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            importlib.import_module("tensorflow")
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_decoding_flags(parser, args)
    if not args.verbose:
        import_tensorflow_quietly()
    logging.getLogger("tensorflow").setLevel(logging.INFO if args.verbose else logging.ERROR)
    setup_logging(args.verbose, args.log_path)
    note_ignored_flags(args)
    try:
        module = importlib.import_module(COMMANDS[args.command])
        return module.run(args)
    except AocrError as e:
        log.error("%s", e)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


def run_command() -> None:
    """The `aocr` command and `python -m aocr`: main(), then exit with its status. When a training
    session is still closing in the background (its input threads finishing a batch; everything is
    saved), the process exits at once instead of waiting for it."""
    try:
        status = main()
    except KeyboardInterrupt:  # before the command's own handling: while Python or TensorFlow was still loading
        sys.stderr.write("aocr: interrupted\n")
        status = 130
    strategy = sys.modules.get("aocr.training.strategy")
    if strategy is not None and strategy.closing_in_background():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
