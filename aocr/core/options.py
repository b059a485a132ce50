"""Every flag of aocr, defined once: its names, how its text is read, its default and its help, and the field of
the library's values it fills (ModelParams, TrainConfig, ServeOptions, Decoding). aocr.cli.parser adds these rows
to the commands, aocr.cli builds the values from them by field, and messages name a field's flag by FLAG_OF.

A row's default of None means "not given": for a model-shape flag, params.json's value or the training data's.
Help texts may say %(default)s, which the parser replaces with the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aocr.core import defaults

AUTO = "auto"  # a size or the charset taken from the training data (aocr.core.params.AUTO)


def positive_int(text: str) -> int:
    """A whole number of at least 1; ValueError names what was wrong."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"must be greater than 0, got {value}")
    return value


def positive_int_or_auto(text: str) -> int | str:
    """A size: a whole number, or 'auto' (kept as the string) to take it from the training data."""
    return text if text == AUTO else positive_int(text)


def held_out_fraction(text: str) -> float:
    """--validation-split: 0 (none) or a share above 0 and at most one half."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a fraction, got {text!r}") from None
    if value != 0 and not 0 < value <= 0.5:
        raise ValueError(f"must be 0 (none) or more than 0 and at most 0.5, got {value}")
    return value


@dataclass(frozen=True)
class Option:
    """One flag."""

    names: tuple[str, ...]  # the flag first, then its aliases
    field: str  # the field of the library's value that it fills
    help: str
    read: Callable[[str], Any] | None = str  # the flag's text -> its value (ValueError: why not); None: a switch
    default: Any = None
    choices: tuple[Any, ...] = ()
    metavar: str | None = None
    given: Any = True  # a switch's value when it is given
    dest: str | None = None  # where the parsed value is kept, where not under `field`
    repeated: bool = False  # the flag may be given several times; its values are kept in order
    negatable: bool = False  # a switch that also has a --no- form

    @property
    def flag(self) -> str:
        return self.names[0]

    @property
    def overrides(self) -> bool:
        """A switch kept apart from its field (its own dest): when given, it sets the field whatever the field's
        other flag says, as --no-gradient-clipping does --max-gradient-norm."""
        return self.read is None and self.dest is not None

    @property
    def key(self) -> str:
        """The attribute the parsed value is kept under."""
        return self.dest or self.field


def _opt(names: str, field: str, help: str, **how: Any) -> Option:
    return Option(tuple(names.split()), field, help, **how)


def _switch(names: str, field: str, help: str, given: Any = True, **how: Any) -> Option:
    return Option(tuple(names.split()), field, help, read=None, given=given, **how)


def _size(flag: str, field: str, help: str) -> Option:
    return _opt(flag, field, help, read=positive_int_or_auto, metavar="N|auto")


MAX_IMAGE_PIXELS = _opt(
    "--max-image-pixels", "max_image_pixels", read=positive_int, default=defaults.MAX_IMAGE_PIXELS, metavar="N",
    help="skip, naming it, an image whose header declares more than N pixels (a GIF's frames counted together), "
         "before anything decodes it (default: %(default)s)")
LOG_PATH = _opt("--log-path", "log_path", default=defaults.LOG_PATH,
                help="also write the log to this file ('' for none; default: %(default)s)")
VERBOSE = _switch("-v --verbose", "verbose", "log debug lines (per image in test) and TensorFlow's own start-up "
                                             "and device lines", default=False)
MODEL_DIR = _opt("--model-dir --job-dir", "model_dir", default=defaults.MODEL_DIR,
                 help="checkpoints and params.json (default: %(default)s); --job-dir is the name cloud training "
                      "jobs pass")
GPU_ID = _opt("--gpu-id", "gpu_id", read=whole_number,
              help="run the model on this GPU (soft placement: CPU when it is absent)")
CHECKPOINT = _opt("--checkpoint", "checkpoint", default=defaults.CHECKPOINT, metavar="best|latest|PATH",
                  help="which checkpoint to load: 'best' (the best validated one when training kept one, else the "
                       "latest), 'latest', or a checkpoint path (default: %(default)s)")
VISUALIZE_TO = _opt("--output-dir", "output_dir", default=defaults.OUTPUT_DIR,
                    help="for --visualize (default: %(default)s)")


def _batch_size(default: int, why: str = "") -> Option:
    return _opt("--batch-size", "batch_size", read=positive_int, default=default,
                help=f"images per step (default: %(default)s{why})")


def visualize(what: str) -> Option:
    return _switch("--visualize", "visualize", f"write {what} under --output-dir", default=False)


TRAIN_BATCH_SIZE = _batch_size(defaults.TRAIN_BATCH_SIZE, "; learning is bound by steps more than by images, and the "
                                                          "original aocr's 65 takes about 3 times as long per step")
INFERENCE_BATCH_SIZE = _batch_size(defaults.BATCH_SIZE)

# --charset and --full-ascii exclude each other, as do --force-uppercase and --no-force-uppercase.
CHARSET = (
    _switch("--full-ascii", "full_ascii", "read printable ASCII (32-126) with case kept, instead of digits and A-Z"),
    _opt("--charset", "charset",
         help="'auto' (default for a new model: the characters of the training labels), a file (one character per "
              "line, or any UTF-8 text whose distinct characters are taken), or the characters themselves"),
)
CASE = (
    _switch("--force-uppercase", "force_uppercase",
            "upper-case every label (default only for a charset without lower-case letters, as the original's "
            "digits and A-Z; an auto charset keeps the labels' case)"),
    _switch("--no-force-uppercase", "no_force_uppercase",
            "keep the labels' case (the default, unless the charset has no lower-case letter)"),
)

# The flags that fix a model (ModelParams): stored in params.json by train, read from it by the other verbs.
SHAPE = (
    _size("--max-width", "max_width", "widest image in pixels, or 'auto' (default for a new model: from the "
                                      "training images); wider ones are shrunk to fit, never dropped"),
    _size("--max-height", "max_height", "tallest image in pixels, or 'auto' (default for a new model: from the "
                                        "training images)"),
    _size("--max-prediction", "max_prediction", "longest label in characters, or 'auto' (default for a new model: "
                                                "the longest training label)"),
    _opt("--image-height", "image_height", read=positive_int, metavar="N",
         help=f"the height images are resized to for the CNN, {defaults.MIN_IMAGE_HEIGHT}-{defaults.MAX_IMAGE_HEIGHT}"
              f" (default: {defaults.IMAGE_HEIGHT}); 48 or 64 keep more detail of small print or dense scripts, at a "
              "cost in speed"),
    _opt("--cnn", "cnn", choices=defaults.CNNS,
         help=f"the CNN (default for a new model: {defaults.CNN}): 'compact' is sized to train fast on CPUs, "
              "'original' is the original aocr's wider network"),
    _switch("--color", "channels", "read RGB instead of grayscale", given=3),
    _opt("--attn-num-hidden", "attn_num_hidden", read=positive_int,
         help=f"units per decoder layer (default: {defaults.ATTN_NUM_HIDDEN})"),
    _opt("--attn-num-layers", "attn_num_layers", read=positive_int,
         help=f"decoder layers (default: {defaults.ATTN_NUM_LAYERS})"),
    _switch("--use-gru", "use_gru", "GRU decoder layers instead of LSTM"),
    _opt("--target-embedding-size", "target_embedding_size", read=positive_int,
         help=f"size of the character embedding (default: {defaults.TARGET_EMBEDDING_SIZE})"),
)
MODEL_DECODER = _opt(
    "--decoder", "decoder", dest="model_decoder", choices=(AUTO, *defaults.MODEL_DECODERS),
    help="what a new model trains: 'ctc' (the CTC head alone: it learns fastest, on words and on long lines), "
         "'attention' (the original aocr's attention decoder, with a CTC head beside it; test, predict and export "
         f"read with either or both, and --lexicon needs it), or 'auto' (the default: the resumed model's own; for a "
         f"new one '{defaults.NEW_MODEL_DECODER}', or 'attention' where --attn-num-layers, --use-gru or "
         "--target-embedding-size is given)")

# How test, predict and export decode (Decoding).
BEAM_WIDTH = _opt("--beam-width", "beam_width", read=positive_int, default=1, metavar="K",
                  help="keep the K most likely hypotheses per image while decoding (beam search); 1 decodes "
                       "greedily, as before (default: %(default)s)")
N_BEST = _opt("--n-best", "n_best", read=positive_int, metavar="N",
              help="answer the N most likely candidates per image, each with its probability and its characters' "
                   "(N <= --beam-width; default: 1)")
DECODER = _opt("--decoder", "decoder", choices=defaults.DECODERS,
               help="which head reads: 'attention', 'ctc', or 'joint' (the attention decoder's beam rescored by the "
                    "CTC head); default: the one that scored best on the validation images when training last kept a "
                    "best checkpoint, else the model's own (a CTC model reads only 'ctc')")
LEXICON = _opt("--lexicon", "lexicon", metavar="FILE",
               help="answer only words of FILE (one a line; words with characters outside the charset are skipped, "
                    "naming them), by beam search even at --beam-width 1")


def precision(choices: tuple[str, ...]) -> Option:
    """--precision of test, predict (with 'auto') and export (without)."""
    auto = "; 'auto' is bfloat16 on such a CPU without --gpu-id, else float32" if AUTO in choices else ""
    return _opt("--precision", "precision", choices=choices, default=choices[0],
                help="arithmetic of the convolutions: bfloat16 is about 2.4x faster on CPUs with AMX or AVX-512 BF16 "
                     f"units and may change an answer now and then, float32 is the exports' default{auto} "
                     "(default: %(default)s)")


# `aocr train` (TrainConfig), beside --model-dir, --batch-size, --gpu-id and --max-image-pixels.
TRAINING = (
    _opt("--num-epoch", "num_epoch", read=positive_int, default=defaults.NUM_EPOCH,
         help="passes over the dataset (default: %(default)s)"),
    _opt("--max-steps", "max_steps", read=positive_int,
         help="stop when the global step reaches N, even before --num-epoch passes"),
    _opt("--max-minutes", "max_minutes", read=positive_float, metavar="M",
         help="stop and save after M minutes of training"),
    _opt("--steps-per-checkpoint", "steps_per_checkpoint", read=positive_int, default=defaults.STEPS_PER_CHECKPOINT,
         help="log and save every N steps (default: %(default)s)"),
    _opt("--optimizer", "optimizer", choices=tuple(sorted(defaults.LEARNING_RATES)), default=defaults.OPTIMIZER,
         help="(default: %(default)s; 'adadelta' with --initial-learning-rate 1.0 is the original aocr's)"),
    _opt("--initial-learning-rate", "learning_rate", read=positive_float,
         help="(default: the optimizer's own: "
              + ", ".join(f"{name} {rate}" for name, rate in sorted(defaults.LEARNING_RATES.items()))
              + "); below batch 32, Adam's is multiplied by sqrt(batch size / 32), given or default"),
    _opt("--max-gradient-norm", "max_gradient_norm", read=positive_float, default=defaults.MAX_GRADIENT_NORM,
         help="clip gradients to this global norm (default: %(default)s)"),
    _switch("--no-gradient-clipping", "max_gradient_norm", "do not clip gradients", given=None,
            dest="no_gradient_clipping"),
    _switch("--no-resume", "resume", "start from scratch instead of the latest checkpoint in --model-dir",
            given=False, default=True),
    _opt("--init-from", "init_from", metavar="DIR",
         help="start from another model's weights (same shapes; characters the two charsets share keep their rows), "
              "with a fresh step count"),
    _opt("--augment", "augment", choices=defaults.AUGMENT_LEVELS, default=defaults.AUGMENT,
         help="random distortions of the training images (rotation, shear, scale, blur, noise, contrast); auto: "
              f"none for the first {defaults.AUTO_UNDISTORTED_EPOCHS} passes over the training set, "
              f"{defaults.AUTO_AUGMENT_LEVEL} after them; test, predict and export never augment "
              "(default: %(default)s)"),
    _opt("--validation", "validation", metavar="DATASET",
         help="TFRecords to score at every checkpoint (word and character accuracy and attention images in "
              f"TensorBoard; its first {defaults.VALIDATION_LIMIT} records)"),
    _opt("--validation-split", "validation_split", read=held_out_fraction, default=defaults.VALIDATION_SPLIT,
         metavar="FRACTION",
         help="hold out this share of the training records, chosen by a hash of each record so a resumed run holds "
              "out the same ones, to score at every checkpoint and keep the best checkpoint; ignored with "
              "--validation (default: %(default)s)"),
    _opt("--patience", "patience", read=positive_int, default=defaults.PATIENCE, metavar="N",
         help="stop after N checkpoints without a better validation score (default: never)"),
    _opt("--seed", "seed", read=whole_number, help="random seed for weights and shuffling"),
    _opt("--precision", "precision", choices=defaults.PRECISIONS, default=defaults.PRECISION,
         help="arithmetic of the convolutions in training; 'auto' (the default) is bfloat16 on a CPU with AMX or "
              "AVX-512 BF16 units unless --gpu-id is given or TF_CONFIG makes a cluster, and float32 otherwise: on a "
              "GPU, pass --gpu-id or --precision float32. Testing, prediction and exports compute in float32 unless "
              "given their own --precision"),
    _switch("--async", "synchronous", "in a cluster (TF_CONFIG), apply each worker's gradients as they come "
                                      "instead of aggregating them synchronously", given=False, default=True),
    _opt("--step-timeout", "step_timeout", read=positive_float, default=defaults.STEP_TIMEOUT,
         help="in a cluster, give up (after saving on the chief, naming the tasks that no longer answer) when a step "
              "waits longer than this many seconds for the other tasks; it must outlast the chief's checkpoint and "
              "validation (default: %(default)s)"),
)

# `aocr serve` (ServeOptions), beside the export's directory.
SERVING = (
    _opt("--model-name", "model_name", default=defaults.SERVE_MODEL_NAME, help="(default: %(default)s)"),
    _opt("--host", "host", default=defaults.SERVE_HOST, help="(default: %(default)s)"),
    _opt("--port", "port", read=whole_number, default=defaults.SERVE_PORT, help="(default: %(default)s)"),
    _opt("--version", "version", dest="export_version", read=positive_int,
         help="serve this version (default: the newest)"),
    _opt("--max-request-bytes", "max_request_bytes", read=positive_int, default=defaults.MAX_REQUEST_BYTES,
         help="largest request body accepted (default: %(default)s)"),
    _opt("--version-label", "version_labels", repeated=True, metavar="LABEL=VERSION",
         help="a version label, as TF Serving's version_labels: requests to /labels/LABEL get that version, which "
              "is loaded too (repeatable; e.g. --version-label stable=1)"),
    _opt("--grpc-port", "grpc_port", read=whole_number,
         help="port of TF Serving's gRPC API (PredictionService, ModelService); 0: no gRPC (default: 8500, as TF "
              "Serving's --port, where the grpc extra is installed)"),
    _switch("--enable-batching", "enable_batching", "run concurrent requests together in batches, as TF Serving's "
                                                    "--enable_batching (default: on)", negatable=True, default=True),
    _opt("--max-batch-size", "max_batch_size", read=positive_int, default=defaults.SERVE_MAX_BATCH_SIZE,
         help="most images in one batch; a larger request is split (default: %(default)s)"),
    _opt("--batch-timeout-micros", "batch_timeout_micros", read=whole_number,
         help="longest wait for a batch to fill, as TF Serving's; 0: run what is queued at once (default: adaptive, "
              "a batch waits for as many requests as were in the server when the last batch ended, at most half "
              "that batch's run time and 25 ms)"),
    _opt("--num-batch-threads", "num_batch_threads", read=positive_int, default=defaults.SERVE_BATCH_THREADS,
         help="batches run at the same time (default: %(default)s)"),
    _opt("--precision", "precision", choices=defaults.INFERENCE_PRECISIONS, default=defaults.INFERENCE_PRECISIONS[0],
         help="arithmetic of the model's convolutions: bfloat16 is faster on CPUs with AMX or AVX-512 BF16 units and "
              "may move a probability by about 0.01; 'auto' is bfloat16 on such a CPU where TensorFlow sees no GPU, "
              "float32 elsewhere, as tensorflow_model_server computes (default: %(default)s)"),
)


# The flags of one command alone.
DATASET = (
    _opt("--log-step", "log_step", read=positive_int, default=defaults.LOG_STEP,
         help="log progress every N lines when not on a terminal (default: %(default)s)"),
    _switch("--save-filename", "save_filename", "store each image's path in the record's 'comment' field",
            default=False),
)
NO_DISTANCE = _switch("--no-distance", "no_distance", "show word accuracy (full matches) instead of character "
                      "accuracy (1 - normalized edit distance) in the progress line; the last line always gives both",
                      default=False)
PREDICT_FORMAT = _opt("--format", "format", choices=("tsv", "jsonl"), default="tsv",
                      help="'tsv': path, text and probability per line; 'jsonl': one JSON object per image with path, "
                           "text, probability, characters (each character with its probability) and, with --n-best, "
                           "candidates (default: %(default)s)")
EXPORT = (
    _opt("--format", "format", choices=("savedmodel", "frozengraph", "tflite"), default=defaults.EXPORT_FORMAT,
         help="(default: %(default)s)"),
    _opt("--version", "version", dest="export_version", read=positive_int,
         help="SavedModel version directory (default: the next free integer)"),
    _switch("--force", "force", "replace an existing version or frozen graph", default=False),
)

def _flags_by_field(options: tuple[Option, ...]) -> dict[str, str]:
    names: dict[str, list[str]] = {}
    for option in options:
        names.setdefault(option.field, []).append(option.flag)
    return {field: "/".join(flags) for field, flags in names.items()}


# A ModelParams or TrainConfig field -> the flag(s) that set it, as messages name them.
FLAG_OF = {
    **_flags_by_field((*TRAINING, *SHAPE, MODEL_DECODER, TRAIN_BATCH_SIZE)),
    "charset": "--charset/--full-ascii",
    "force_uppercase": "--force-uppercase/--no-force-uppercase/--full-ascii",
}


def values_of(parsed: Any, options: tuple[Option, ...]) -> dict[str, Any]:
    """The fields the options fill, from a parse's attributes (Option.overrides: a given overriding switch wins)."""
    overriding = [option for option in options if option.overrides]
    fields = {option.field: getattr(parsed, option.key) for option in options if option not in overriding}
    fields.update({option.field: tuple(fields[option.field] or ()) for option in options if option.repeated})
    fields.update({option.field: option.given for option in overriding if getattr(parsed, option.key)})
    return fields
