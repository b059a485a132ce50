"""The command line's grammar: build_parser() with every subcommand and its flags, nothing else.
Each verb's work lives in its own module of aocr.cli (aocr.cli.COMMANDS)."""

from __future__ import annotations

import argparse
from typing import Any

from aocr import __version__
from aocr.core import defaults


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return value


def _positive_int_or_auto(text: str) -> int | str:
    """A size flag: a whole number, or 'auto' (kept as the string) to take it from the training data."""
    return text if text == "auto" else _positive_int(text)  # aocr.core.params.AUTO; importing params would load TF


def _validation_split(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction, got {text!r}") from None
    if value != 0 and not 0 < value <= 0.5:
        raise argparse.ArgumentTypeError(f"must be 0 (none) or more than 0 and at most 0.5, got {value}")
    return value


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


def _common_flags() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--log-path", default=defaults.LOG_PATH,
                   help="also write the log to this file ('' for none; default: %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log debug lines (per image in test) and TensorFlow's own start-up and device lines")
    return p


def _model_dir_flags() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--model-dir", "--job-dir", dest="model_dir", default=defaults.MODEL_DIR,
                   help="checkpoints and params.json (default: %(default)s); --job-dir is the "
                        "name cloud training jobs pass")
    return p


def _gpu_flags() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--gpu-id", type=int, default=None,
                   help="run the model on this GPU (soft placement: CPU when it is absent)")
    return p


def _batch_flags(default: int = defaults.BATCH_SIZE, why: str = "") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--batch-size", type=_positive_int, default=default,
                   help=f"images per step (default: %(default)s{why})")
    return p


def _checkpoint_flags() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--checkpoint", default=defaults.CHECKPOINT, metavar="best|latest|PATH",
                   help="which checkpoint to load: 'best' (the best validated one when training kept one, else "
                        "the latest), 'latest', or a checkpoint path (default: %(default)s)")
    return p


def _visualize_flags(what: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--visualize", action="store_true", help=f"write {what} under --output-dir")
    p.add_argument("--output-dir", default=defaults.OUTPUT_DIR, help="for --visualize (default: %(default)s)")
    return p


def _charset_flags() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--full-ascii", action="store_true", default=None,
                       help="read printable ASCII (32-126) with case kept, instead of digits and A-Z")
    which.add_argument("--charset", default=None,
                       help="'auto' (default for a new model: the characters of the training labels), a file (one "
                            "character per line, or any UTF-8 text whose distinct characters are taken), or the "
                            "characters themselves")
    case = p.add_mutually_exclusive_group()
    case.add_argument("--force-uppercase", action="store_true", default=None,
                      help="upper-case every label (default only for a charset without lower-case letters, as the "
                           "original's digits and A-Z; an auto charset keeps the labels' case)")
    case.add_argument("--no-force-uppercase", action="store_true", default=None,
                      help="keep the labels' case (the default, unless the charset has no lower-case letter)")
    return p


def _shape_flags() -> argparse.ArgumentParser:
    """Flags that fix the model; after training they come from params.json and need not be repeated.
    aocr.cli.flags.SHAPE_FLAGS maps them to the model's params."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group(
        "model shape (stored in the model dir's params.json by train; test, predict and export read it)")
    g.add_argument("--max-width", type=_positive_int_or_auto, default=None, metavar="N|auto",
                   help="widest image in pixels, or 'auto' (default for a new model: from the training images); "
                        "wider ones are shrunk to fit, never dropped")
    g.add_argument("--max-height", type=_positive_int_or_auto, default=None, metavar="N|auto",
                   help="tallest image in pixels, or 'auto' (default for a new model: from the training images)")
    g.add_argument("--max-prediction", type=_positive_int_or_auto, default=None, metavar="N|auto",
                   help="longest label in characters, or 'auto' (default for a new model: the longest training "
                        "label)")
    g.add_argument("--image-height", type=_positive_int, default=None, metavar="N",
                   help=f"the height images are resized to for the CNN, {defaults.MIN_IMAGE_HEIGHT}-"
                        f"{defaults.MAX_IMAGE_HEIGHT} (default: {defaults.IMAGE_HEIGHT}); 48 or 64 keep more detail "
                        "of small print or dense scripts, at a cost in speed")
    g.add_argument("--cnn", choices=defaults.CNNS, default=None,
                   help=f"the CNN (default for a new model: {defaults.CNN}): 'compact' is sized to train fast on "
                        "CPUs, 'original' is the original aocr's wider network")
    g.add_argument("--color", action="store_true", default=None, help="read RGB instead of grayscale")
    g.add_argument("--attn-num-hidden", type=_positive_int, default=None,
                   help=f"units per decoder layer (default: {defaults.ATTN_NUM_HIDDEN})")
    g.add_argument("--attn-num-layers", type=_positive_int, default=None,
                   help=f"decoder layers (default: {defaults.ATTN_NUM_LAYERS})")
    g.add_argument("--use-gru", action="store_true", default=None, help="GRU decoder layers instead of LSTM")
    g.add_argument("--target-embedding-size", type=_positive_int, default=None,
                   help=f"size of the character embedding (default: {defaults.TARGET_EMBEDDING_SIZE})")
    return p


def _decoding_flags(when: str, precisions: tuple[str, ...] = defaults.INFERENCE_PRECISIONS) -> argparse.ArgumentParser:
    """--beam-width, --n-best, --lexicon and --precision (aocr.cli.flags.decoding_of reads them;
    check_decoding_flags checks N <= K)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group(f"decoding ({when})")
    g.add_argument("--beam-width", type=_positive_int, default=1, metavar="K",
                   help="keep the K most likely hypotheses per image while decoding (beam search); 1 decodes "
                        "greedily, as before (default: %(default)s)")
    g.add_argument("--n-best", type=_positive_int, default=None, metavar="N",
                   help="answer the N most likely candidates per image, each with its probability and its "
                        "characters' (N <= --beam-width; default: 1)")
    g.add_argument("--decoder", choices=defaults.DECODERS, default=None,
                   help="which head reads: 'attention', 'ctc', or 'joint' (the attention decoder's beam rescored "
                        "by the CTC head); default: the one that scored best on the validation images when "
                        "training last kept a best checkpoint, else the model's own (a CTC model reads only 'ctc')")
    g.add_argument("--lexicon", default=None, metavar="FILE",
                   help="answer only words of FILE (one a line; words with characters outside the charset are "
                        "skipped, naming them), by beam search even at --beam-width 1")
    auto = "; 'auto' is bfloat16 on such a CPU without --gpu-id, else float32" if "auto" in precisions else ""
    g.add_argument("--precision", choices=precisions, default=precisions[0],
                   help="arithmetic of the convolutions: bfloat16 is about 2.4x faster on CPUs with AMX or AVX-512 "
                        f"BF16 units and may change an answer now and then, float32 is the exports' default (README)"
                        f"{auto} (default: %(default)s)")
    return p


def check_decoding_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--n-best N needs N hypotheses: more than --beam-width is a usage error."""
    n_best, beam_width = getattr(args, "n_best", None), getattr(args, "beam_width", 1)
    if n_best is not None and n_best > beam_width:
        parser.error(f"--n-best {n_best} is more than --beam-width {beam_width}: beam search keeps only K "
                     f"hypotheses per image; pass --beam-width {n_best} or more, or a smaller --n-best")


def _add_image_limit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-image-pixels", type=_positive_int, default=defaults.MAX_IMAGE_PIXELS, metavar="N",
                   help="skip, naming it, an image whose header declares more than N pixels (a GIF's frames "
                        "counted together), before anything decodes it (default: %(default)s)")


def _add_dataset(sub: Any, common: argparse.ArgumentParser, charset: argparse.ArgumentParser) -> None:
    p = sub.add_parser("dataset", parents=[common, charset], help="annotations or ground truth -> TFRecords",
                       description="Write TFRecords from annotation files of 'path label' lines, folders or globs of "
                                   "line images with NAME.gt.txt beside each, and PAGE-XML or ALTO files (their text "
                                   "lines cropped from the page image). TIFF and other images TensorFlow does not "
                                   "decode are stored as PNG.")
    p.add_argument("paths", metavar="PATH", nargs="+",
                   help="INPUT [INPUT ...] [OUTPUT]: each INPUT an annotation file, a folder (searched "
                        "recursively) or a quoted glob of line images with their .gt.txt, or a PAGE-XML/ALTO file; "
                        "with more than one path, the last is the TFRecords file to write (default: "
                        f"{defaults.DATASET_OUTPUT})")
    p.add_argument("--log-step", type=_positive_int, default=defaults.LOG_STEP,
                   help="log progress every N lines when not on a terminal (default: %(default)s)")
    p.add_argument("--save-filename", action="store_true",
                   help="store each image's path in the record's 'comment' field")
    _add_image_limit(p)


def _add_train(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train", parents=[*parents, _ignored_flags("train", "--no-distance", "--output-dir")],
                       help="TFRecords -> checkpoints",
                       description="Train a model, resuming from the model dir's latest checkpoint.")
    p.add_argument("dataset_path", metavar="DATASET",
                   help="TFRecords: a path, a glob or a comma-separated list")
    p.add_argument("--num-epoch", type=_positive_int, default=defaults.NUM_EPOCH,
                   help="passes over the dataset (default: %(default)s)")
    p.add_argument("--max-steps", type=_positive_int, default=None,
                   help="stop when the global step reaches N, even before --num-epoch passes")
    p.add_argument("--max-minutes", type=_positive_float, default=None, metavar="M",
                   help="stop and save after M minutes of training")
    p.add_argument("--steps-per-checkpoint", type=_positive_int, default=defaults.STEPS_PER_CHECKPOINT,
                   help="log and save every N steps (default: %(default)s)")
    p.add_argument("--optimizer", choices=sorted(defaults.LEARNING_RATES), default=defaults.OPTIMIZER,
                   help="(default: %(default)s; 'adadelta' with --initial-learning-rate 1.0 "
                        "is the original aocr's)")
    p.add_argument("--initial-learning-rate", type=_positive_float, default=None,
                   help="(default: the optimizer's own: "
                        + ", ".join(f"{k} {v}" for k, v in sorted(defaults.LEARNING_RATES.items()))
                        + "); below batch 32, Adam's is multiplied by sqrt(batch size / 32), given or default")
    p.add_argument("--max-gradient-norm", type=_positive_float, default=defaults.MAX_GRADIENT_NORM,
                   help="clip gradients to this global norm (default: %(default)s)")
    p.add_argument("--no-gradient-clipping", action="store_true", help="do not clip gradients")
    p.add_argument("--no-resume", action="store_true",
                   help="start from scratch instead of the latest checkpoint in --model-dir")
    p.add_argument("--init-from", default=None, metavar="DIR",
                   help="start from another model's weights (same shapes; characters the two charsets share keep "
                        "their rows), with a fresh step count")
    p.add_argument("--decoder", dest="model_decoder", choices=("auto", *defaults.MODEL_DECODERS), default=None,
                   help="what a new model trains: 'ctc' (the CTC head alone: it learns fastest, on words and on "
                        "long lines), 'attention' (the original aocr's attention decoder, with a CTC head beside "
                        "it; test, predict and export read with either or both, and --lexicon needs it), or 'auto' "
                        f"(the default: the resumed model's own; for a new one '{defaults.NEW_MODEL_DECODER}', or "
                        "'attention' where --attn-num-layers, --use-gru or --target-embedding-size is given)")
    p.add_argument("--augment", choices=defaults.AUGMENT_LEVELS, default=defaults.AUGMENT,
                   help="random distortions of the training images (rotation, shear, scale, blur, noise, "
                        "contrast); test, predict and export never augment (default: %(default)s)")
    p.add_argument("--validation", default=None, metavar="DATASET",
                   help="TFRecords to score at every checkpoint (word and character accuracy and attention "
                        f"images in TensorBoard; its first {defaults.VALIDATION_LIMIT} records)")
    p.add_argument("--validation-split", type=_validation_split, default=defaults.VALIDATION_SPLIT,
                   metavar="FRACTION",
                   help="hold out this share of the training records, chosen by a hash of each record so a resumed "
                        "run holds out the same ones, to score at every checkpoint and keep the best checkpoint; "
                        "ignored with --validation (default: %(default)s)")
    p.add_argument("--patience", type=_positive_int, default=defaults.PATIENCE, metavar="N",
                   help="stop after N checkpoints without a better validation score (default: never)")
    p.add_argument("--seed", type=int, default=None, help="random seed for weights and shuffling")
    p.add_argument("--precision", choices=defaults.PRECISIONS, default=defaults.PRECISION,
                   help="arithmetic of the convolutions in training; 'auto' (the default) is bfloat16 on a CPU "
                        "with AMX or AVX-512 BF16 units unless --gpu-id is given or TF_CONFIG makes a cluster, "
                        "and float32 otherwise: on a GPU, pass --gpu-id or --precision float32. "
                        "Testing, prediction and exports compute in float32 unless given their own --precision")
    p.add_argument("--async", dest="use_async", action="store_true",
                   help="in a cluster (TF_CONFIG), apply each worker's gradients as they come instead of "
                        "aggregating them synchronously")
    p.add_argument("--step-timeout", type=_positive_float, default=defaults.STEP_TIMEOUT,
                   help="in a cluster, give up (after saving on the chief, naming the tasks that no longer answer) "
                        "when a step waits longer than this many seconds for the other tasks; it must outlast the "
                        "chief's checkpoint and validation (default: %(default)s)")
    _add_image_limit(p)


def _add_test(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    ignored = _ignored_flags("test", "--initial-learning-rate", "--max-gradient-norm", "--no-gradient-clipping")
    p = sub.add_parser("test", parents=[*parents, _visualize_flags("attention maps and an HTML report"),
                                        _decoding_flags("the accuracy is that of the best candidate"), ignored],
                       help="TFRecords -> accuracy",
                       description="Measure a trained model on TFRecords. Shapes come from params.json.")
    p.add_argument("dataset_path", metavar="DATASET",
                   help="TFRecords: a path, a glob or a comma-separated list")
    p.add_argument("--no-distance", action="store_true",
                   help="show word accuracy (full matches) instead of character accuracy (1 - normalized edit "
                        "distance) in the progress line; the last line always gives both")
    _add_image_limit(p)


def _add_predict(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    ignored = _ignored_flags("predict", "--no-distance", "--initial-learning-rate", "--max-gradient-norm",
                             "--no-gradient-clipping")
    p = sub.add_parser("predict", parents=[*parents, _visualize_flags("attention maps"),
                                           _decoding_flags("--n-best candidates are printed with --format jsonl"),
                                           ignored],
                       help="images -> text",
                       description="Read text from image files. With no PATH, read paths from stdin, one a line. "
                                   "Prints 'path<TAB>text<TAB>probability' per image.")
    p.add_argument("paths", metavar="PATH", nargs="*", help="image files or directories of images")
    p.add_argument("--format", choices=["tsv", "jsonl"], default="tsv",
                   help="'tsv': path, text and probability per line; 'jsonl': one JSON object per image with "
                        "path, text, probability, characters (each character with its probability) and, with "
                        "--n-best, candidates (default: %(default)s)")
    _add_image_limit(p)


def _add_export(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    ignored = _ignored_flags("export", "--gpu-id", "--no-distance", "--output-dir", "--initial-learning-rate",
                             "--max-gradient-norm", "--no-gradient-clipping")
    decoding = _decoding_flags("fixed in the export; --n-best sets the 'n_best' signature's candidates",
                               ("float32", "bfloat16"))
    p = sub.add_parser("export", parents=[*parents, decoding, ignored],
                       help="checkpoints -> SavedModel or frozen graph",
                       description="Export a checkpoint for TensorFlow Serving (DIR/VERSION/) "
                                   "or as a frozen graph (DIR/frozen_graph.pb). Shapes come from params.json.")
    p.add_argument("export_path", metavar="DIR", nargs="?", default=defaults.EXPORT_DIR,
                   help="(default: %(default)s)")
    p.add_argument("--format", choices=["savedmodel", "frozengraph", "tflite"], default=defaults.EXPORT_FORMAT,
                   help="(default: %(default)s)")
    p.add_argument("--version", dest="export_version", type=_positive_int, default=None,
                   help="SavedModel version directory (default: the next free integer)")
    p.add_argument("--force", action="store_true", help="replace an existing version or frozen graph")


def _add_serve(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="SavedModel -> TF Serving REST API",
                       description="Serve an exported model over HTTP with TensorFlow Serving's REST API.")
    p.add_argument("export_path", metavar="DIR", help="directory written by `aocr export`")
    p.add_argument("--model-name", default=defaults.SERVE_MODEL_NAME, help="(default: %(default)s)")
    p.add_argument("--host", default=defaults.SERVE_HOST, help="(default: %(default)s)")
    p.add_argument("--port", type=int, default=defaults.SERVE_PORT, help="(default: %(default)s)")
    p.add_argument("--version", dest="export_version", type=_positive_int, default=None,
                   help="serve this version (default: the newest)")
    p.add_argument("--max-request-bytes", type=_positive_int, default=defaults.MAX_REQUEST_BYTES,
                   help="largest request body accepted (default: %(default)s)")
    p.add_argument("--version-label", action="append", default=[], metavar="LABEL=VERSION",
                   help="a version label, as TF Serving's version_labels: requests to /labels/LABEL get that "
                        "version, which is loaded too (repeatable; e.g. --version-label stable=1)")
    p.add_argument("--grpc-port", type=int, default=None,
                   help="port of TF Serving's gRPC API (PredictionService, ModelService); 0: no gRPC "
                        "(default: 8500, as TF Serving's --port, where the grpc extra is installed)")
    p.add_argument("--enable-batching", action=argparse.BooleanOptionalAction, default=True,
                   help="run concurrent requests together in batches, as TF Serving's --enable_batching "
                        "(default: on)")
    p.add_argument("--max-batch-size", type=_positive_int, default=32,
                   help="most images in one batch; a larger request is split (default: %(default)s)")
    p.add_argument("--batch-timeout-micros", type=int, default=None,
                   help="longest wait for a batch to fill, as TF Serving's; 0: run what is queued at once "
                        "(default: adaptive, a batch waits for as many requests as were in the server when the "
                        "last batch ended, at most half that batch's run time and 25 ms)")
    p.add_argument("--num-batch-threads", type=_positive_int, default=1,
                   help="batches run at the same time (default: %(default)s)")
    p.add_argument("--precision", choices=defaults.INFERENCE_PRECISIONS, default=defaults.INFERENCE_PRECISIONS[0],
                   help="arithmetic of the model's convolutions: bfloat16 is faster on CPUs with AMX or "
                        "AVX-512 BF16 units and may move a probability by about 0.01; "
                        "'auto' is bfloat16 on such a CPU where TensorFlow sees no GPU, float32 elsewhere, as "
                        "tensorflow_model_server computes (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aocr", description="Attention OCR: make datasets, train, test, predict, export and serve.")
    parser.add_argument("--version", action="version", version=f"aocr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common, charset = _common_flags(), _charset_flags()
    model = [common, _model_dir_flags(), charset, _shape_flags()]
    _add_dataset(sub, common, charset)
    _add_train(sub, [*model, _gpu_flags(), _batch_flags(
        defaults.TRAIN_BATCH_SIZE, "; until the attention has aligned, learning is bound by steps, and the original "
                                   "aocr's 65 takes about 3 times as long per step")])
    _add_test(sub, [*model, _gpu_flags(), _batch_flags(), _checkpoint_flags()])
    _add_predict(sub, [*model, _gpu_flags(), _batch_flags(), _checkpoint_flags()])
    _add_export(sub, [*model, _checkpoint_flags()])
    _add_serve(sub, common)
    return parser
