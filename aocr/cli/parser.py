"""The command line's grammar: build_parser() puts the rows of aocr.core.options, where every flag is defined,
together into the subcommands. Each verb's work lives in its own module of aocr.cli (aocr.cli.COMMANDS)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from aocr import __version__
from aocr.core import defaults, options


def _argparse_type(read: Callable[[str], Any]) -> Callable[[str], Any]:
    """An Option's reader as argparse's type: its ValueError becomes argparse's usage error, with the reason."""
    def convert(text: str) -> Any:
        try:
            return read(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    convert.__name__ = read.__name__
    return convert


def add_option(group: Any, option: options.Option) -> None:
    """One row of aocr.core.options as a flag of a parser or an argument group."""
    how: dict[str, Any] = {"dest": option.key, "help": option.help, "default": option.default}
    if option.read is None:
        how["action"] = argparse.BooleanOptionalAction if option.negatable else "store_const"
        if not option.negatable:
            how["const"] = True if option.overrides else option.given
    else:
        if option.read is not str:
            how["type"] = _argparse_type(option.read)
        named = None if option.choices else option.flag.lstrip("-").upper().replace("-", "_")
        how.update({"choices": option.choices or None, "metavar": option.metavar or named})
        if option.repeated:
            how["action"] = "append"
    group.add_argument(*option.names, **how)


def _flags(*rows: options.Option, title: str | None = None) -> argparse.ArgumentParser:
    """A parent parser holding these rows, in an argument group of its own when titled."""
    p = argparse.ArgumentParser(add_help=False)
    group = p.add_argument_group(title) if title else p
    for row in rows:
        add_option(group, row)
    return p


class _Ignored(argparse.Action):
    """A flag of the original aocr that means nothing to this subcommand: accepted, and named in
    args.ignored_flags so that main() can say it was ignored."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        ignored = list(getattr(namespace, self.dest, None) or [])
        setattr(namespace, self.dest, [*ignored, self.option_strings[0]])


# The original aocr's flags that some subcommands accept only so that its scripts run unchanged:
# flag -> takes a value.
ORIGINAL_ONLY = {
    "--no-distance": False,
    "--output-dir": True,
    "--gpu-id": True,
    "--initial-learning-rate": True,
    "--max-gradient-norm": True,
    "--no-gradient-clipping": False,
}


def _ignored_flags(command: str, *flags: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group(f"accepted for scripts written for the original aocr; no effect on {command}")
    for flag in flags:
        takes_value = ORIGINAL_ONLY[flag]
        g.add_argument(flag, action=_Ignored, dest="ignored_flags", nargs=None if takes_value else 0,
                       metavar="VALUE" if takes_value else None, default=None, help="ignored")
    return p


def _decoding_flags(when: str, precisions: tuple[str, ...] = defaults.INFERENCE_PRECISIONS) -> argparse.ArgumentParser:
    """--beam-width, --n-best, --decoder, --lexicon and --precision (aocr.cli.flags.decoding_of reads them;
    check_decoding_flags checks N <= K)."""
    return _flags(options.BEAM_WIDTH, options.N_BEST, options.DECODER, options.LEXICON,
                  options.precision(precisions), title=f"decoding ({when})")


def check_decoding_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--n-best N needs N hypotheses: more than --beam-width is a usage error."""
    n_best, beam_width = getattr(args, "n_best", None), getattr(args, "beam_width", 1)
    if n_best is not None and n_best > beam_width:
        parser.error(f"--n-best {n_best} is more than --beam-width {beam_width}: beam search keeps only K "
                     f"hypotheses per image; pass --beam-width {n_best} or more, or a smaller --n-best")


def _charset_flags() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    for pair in (options.CHARSET, options.CASE):
        which = p.add_mutually_exclusive_group()
        for row in pair:
            add_option(which, row)
    return p


def _visualize_flags(what: str) -> argparse.ArgumentParser:
    return _flags(options.visualize(what), options.VISUALIZE_TO)


def _dataset_path(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset_path", metavar="DATASET", help="TFRecords: a path, a glob or a comma-separated list")


def _add_dataset(sub: Any, common: argparse.ArgumentParser, charset: argparse.ArgumentParser) -> None:
    p = sub.add_parser("dataset", parents=[common, charset, _flags(*options.DATASET, options.MAX_IMAGE_PIXELS)],
                       help="annotations or ground truth -> TFRecords",
                       description="Write TFRecords from annotation files of 'path label' lines, folders or globs of "
                                   "line images with NAME.gt.txt beside each, and PAGE-XML or ALTO files (their text "
                                   "lines cropped from the page image). TIFF and other images TensorFlow does not "
                                   "decode are stored as PNG.")
    p.add_argument("paths", metavar="PATH", nargs="+",
                   help="INPUT [INPUT ...] [OUTPUT]: each INPUT an annotation file, a folder (searched "
                        "recursively) or a quoted glob of line images with their .gt.txt, or a PAGE-XML/ALTO file; "
                        "with more than one path, the last is the TFRecords file to write (default: "
                        f"{defaults.DATASET_OUTPUT})")


def _add_train(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    own = _flags(options.TRAIN_BATCH_SIZE, *options.TRAINING, options.MODEL_DECODER, options.MAX_IMAGE_PIXELS)
    p = sub.add_parser("train", parents=[*parents, own, _ignored_flags("train", "--no-distance", "--output-dir")],
                       help="TFRecords -> checkpoints",
                       description="Train a model, resuming from the model dir's latest checkpoint.")
    _dataset_path(p)


def _add_test(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    ignored = _ignored_flags("test", "--initial-learning-rate", "--max-gradient-norm", "--no-gradient-clipping")
    p = sub.add_parser("test", parents=[*parents, _visualize_flags("attention maps and an HTML report"),
                                        _decoding_flags("the accuracy is that of the best candidate"),
                                        _flags(options.NO_DISTANCE, options.MAX_IMAGE_PIXELS), ignored],
                       help="TFRecords -> accuracy",
                       description="Measure a trained model on TFRecords. Shapes come from params.json.")
    _dataset_path(p)


def _add_predict(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    ignored = _ignored_flags("predict", "--no-distance", "--initial-learning-rate", "--max-gradient-norm",
                             "--no-gradient-clipping")
    p = sub.add_parser("predict", parents=[*parents, _visualize_flags("attention maps"),
                                           _decoding_flags("--n-best candidates are printed with --format jsonl"),
                                           _flags(options.PREDICT_FORMAT, options.MAX_IMAGE_PIXELS), ignored],
                       help="images -> text",
                       description="Read text from image files. With no PATH, read paths from stdin, one a line. "
                                   "Prints 'path<TAB>text<TAB>probability' per image.")
    p.add_argument("paths", metavar="PATH", nargs="*", help="image files or directories of images")


def _add_export(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    ignored = _ignored_flags("export", "--gpu-id", "--no-distance", "--output-dir", "--initial-learning-rate",
                             "--max-gradient-norm", "--no-gradient-clipping")
    decoding = _decoding_flags("fixed in the export; --n-best sets the 'n_best' signature's candidates",
                               ("float32", "bfloat16"))
    p = sub.add_parser("export", parents=[*parents, decoding, _flags(*options.EXPORT), ignored],
                       help="checkpoints -> SavedModel or frozen graph",
                       description="Export a checkpoint for TensorFlow Serving (DIR/VERSION/) "
                                   "or as a frozen graph (DIR/frozen_graph.pb). Shapes come from params.json.")
    p.add_argument("export_path", metavar="DIR", nargs="?", default=defaults.EXPORT_DIR,
                   help="(default: %(default)s)")


def _add_serve(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common, _flags(*options.SERVING)], help="SavedModel -> TF Serving REST API",
                       description="Serve an exported model over HTTP with TensorFlow Serving's REST API.")
    p.add_argument("export_path", metavar="DIR", help="directory written by `aocr export`")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aocr", description="Attention OCR: make datasets, train, test, predict, export and serve.")
    parser.add_argument("--version", action="version", version=f"aocr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common, charset = _flags(options.LOG_PATH, options.VERBOSE), _charset_flags()
    shape = _flags(*options.SHAPE, title="model shape (stored in the model dir's params.json by train; test, predict "
                                         "and export read it)")
    model = [common, _flags(options.MODEL_DIR), charset, shape]
    gpu, checkpoint = _flags(options.GPU_ID), _flags(options.CHECKPOINT)
    inference_batch = _flags(options.INFERENCE_BATCH_SIZE)
    _add_dataset(sub, common, charset)
    _add_train(sub, [*model, gpu])
    _add_test(sub, [*model, gpu, inference_batch, checkpoint])
    _add_predict(sub, [*model, gpu, inference_batch, checkpoint])
    _add_export(sub, [*model, checkpoint])
    _add_serve(sub, common)
    return parser
