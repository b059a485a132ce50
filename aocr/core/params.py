"""params.json: the shape-defining settings of a model, written by train and read by every other verb."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from aocr.core import defaults
from aocr.core.charset import Charset
from aocr.core.errors import AocrError
from aocr.core.files import join, read_bytes, write_bytes_atomic
from aocr.core.options import AUTO, FLAG_OF

PARAMS_FILE = "params.json"
# The format of params.json. 1 (files without the field): written before the CNN was a choice, so
# their models have the original aocr's network; 2 adds "cnn"; 3 adds "decoder" (older files: "attention").
FORMAT_VERSION = 3

@dataclass(frozen=True)
class Decoding:
    """How the inference graph decodes: chosen per run of test and predict, or fixed at export time;
    never part of params.json (any model decodes either way)."""

    beam_width: int = 1  # hypotheses kept per image; 1 is greedy decoding
    n_best: int = 1  # candidates answered per image, best first; at most beam_width
    lexicon: str | None = None  # a file of the only words to answer (aocr.model.lexicon), decoded by beam search
    precision: str = "float32"  # the convolutions' arithmetic: "float32" or "bfloat16" (aocr.core.precision)
    decoder: str | None = None  # "attention", "ctc" or "joint" (defaults.DECODERS); None: the model's default


GREEDY = Decoding()


@dataclass(frozen=True)
class ModelParams:
    """Everything that fixes the model's variables and its input and output format."""

    max_width: int = defaults.MAX_WIDTH
    max_height: int = defaults.MAX_HEIGHT
    max_prediction: int = defaults.MAX_PREDICTION
    charset: str = defaults.DEFAULT_CHARSET
    force_uppercase: bool = True
    channels: int = 1
    attn_num_hidden: int = defaults.ATTN_NUM_HIDDEN
    attn_num_layers: int = defaults.ATTN_NUM_LAYERS
    use_gru: bool = False
    target_embedding_size: int = defaults.TARGET_EMBEDDING_SIZE
    image_height: int = defaults.IMAGE_HEIGHT  # the height images are resized to for the CNN
    cnn: str = defaults.CNN  # the CNN's channels: a name of aocr.model.cnn.NETWORKS
    # The heads trained: "attention" (the attention decoder, with the CTC head beside it; either reads) or
    # "ctc" (only the CTC head: no decoder loop, the cheaper model for long lines).
    decoder: str = defaults.MODEL_DECODERS[0]

    def __post_init__(self) -> None:
        for name in ("max_width", "max_height", "max_prediction", "attn_num_hidden",
                     "attn_num_layers", "target_embedding_size"):
            if getattr(self, name) < 1:
                raise AocrError(f"{FLAG_OF[name]} must be at least 1, got {getattr(self, name)}")
        if not defaults.MIN_IMAGE_HEIGHT <= self.image_height <= defaults.MAX_IMAGE_HEIGHT:
            raise AocrError(f"--image-height must be {defaults.MIN_IMAGE_HEIGHT} to {defaults.MAX_IMAGE_HEIGHT}, "
                            f"got {self.image_height}")
        if self.cnn not in defaults.CNNS:
            raise AocrError(f"--cnn must be one of {', '.join(defaults.CNNS)}, got {self.cnn!r}")
        if self.decoder not in defaults.MODEL_DECODERS:
            raise AocrError(f"--decoder must be one of {', '.join(defaults.MODEL_DECODERS)}, got {self.decoder!r}")
        if self.channels not in (1, 3):
            raise AocrError(f"channels must be 1 (grayscale) or 3 (--color), got {self.channels}")
        try:
            Charset(self.charset, self.force_uppercase)
        except ValueError as e:
            raise AocrError(f"--charset: {e}") from None

    @property
    def char_table(self) -> Charset:
        return Charset(self.charset, self.force_uppercase)

    @property
    def image_width(self) -> int:
        """Widest input the CNN sees: the maximum original size scaled to image_height, a multiple of the stride."""
        scaled = math.ceil(self.max_width / self.max_height * self.image_height)
        stride = defaults.WIDTH_STRIDE
        return max(stride, stride * math.ceil(scaled / stride))

    @property
    def encoder_units(self) -> int:
        """Units per direction of the encoder's BiLSTM: attn_num_hidden with the compact CNN, whose
        features are narrower; attn_num_hidden * attn_num_layers with the original's, as the original."""
        return self.attn_num_hidden * (self.attn_num_layers if self.cnn == "original" else 1)

    @property
    def decoders(self) -> tuple[str, ...]:
        """The decodings this model can run (defaults.DECODERS): a CTC model has no attention decoder."""
        return ("ctc",) if self.decoder == "ctc" else defaults.DECODERS

    @property
    def decoder_steps(self) -> int:
        """Decoder steps: up to max_prediction characters, then EOS."""
        return self.max_prediction + 1

    def to_json(self) -> str:
        fields = dict(dataclasses.asdict(self), format_version=FORMAT_VERSION)
        return json.dumps(fields, indent=2, sort_keys=True) + "\n"


def _upgrade(stored: dict[str, Any], path: str) -> dict[str, Any]:
    """The fields of a params.json of any format version, as this version's ModelParams takes them."""
    fields = dict(stored)
    version = fields.pop("format_version", 1)
    if not isinstance(version, int) or version < 1:
        raise AocrError(f"{path}: format_version {version!r} is not a version; restore the file or retrain")
    if version > FORMAT_VERSION:
        raise AocrError(f"{path}: format version {version} was written by a newer aocr (this one reads up to "
                        f"{FORMAT_VERSION}); upgrade aocr with pip install --upgrade")
    if version < 2:
        fields.setdefault("cnn", "original")
    if version < 3:
        fields.setdefault("decoder", "attention")
    return fields


def params_path(model_dir: str) -> str:
    return join(model_dir, PARAMS_FILE)


def load(model_dir: str) -> ModelParams | None:
    """The params.json of a model dir, or None when it has none."""
    path = params_path(model_dir)
    if not tf.io.gfile.exists(path):
        return None
    try:
        stored = json.loads(read_bytes(path).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AocrError(f"{path}: not valid JSON ({e}); restore it or retrain with --no-resume") from None
    if not isinstance(stored, dict):
        raise AocrError(f"{path}: not a JSON object; restore it or retrain with --no-resume")
    stored = _upgrade(stored, path)
    known = {f.name for f in dataclasses.fields(ModelParams)}
    unknown = sorted(set(stored) - known)
    if unknown:
        raise AocrError(f"{path}: unknown fields {unknown}; was it written by a newer aocr?")
    return ModelParams(**stored)


def save(model_dir: str, params: ModelParams) -> None:
    tf.io.gfile.makedirs(model_dir)
    write_bytes_atomic(params_path(model_dir), params.to_json().encode("utf-8"))


def resolve(explicit: dict[str, Any], stored: ModelParams | None, model_dir: str) -> ModelParams:
    """Combine the flags a user gave with a model's params.json.

    `explicit` holds only the fields the user set on the command line. With a stored
    params.json they must agree with it (a contradiction is an error naming both
    values; "auto" defers to it); without one, unset fields take their defaults and
    no field may still be "auto" (the caller settles those from the training data).
    """
    if stored is None:
        unsettled = [FLAG_OF[name].split("/")[0] for name, value in explicit.items() if value == AUTO]
        if unsettled:
            raise AocrError(f"{' '.join(flag + ' auto' for flag in unsettled)}: a new model takes these from its "
                            "training data, which was not read here; pass values")
        return ModelParams(**explicit)
    conflicts = [
        f"{FLAG_OF[name]} gives {name}={value!r} but {params_path(model_dir)} has {getattr(stored, name)!r}"
        for name, value in explicit.items()
        if value != AUTO and getattr(stored, name) != value
    ]
    if conflicts:
        raise AocrError(
            "; ".join(conflicts)
            + ". Drop the flag to use the model's own value, or train a new model "
            "(another --model-dir, or --no-resume)."
        )
    return stored


def require(model_dir: str) -> ModelParams:
    """params.json of a trained model; its absence is an error that says how to get one."""
    stored = load(model_dir)
    if stored is None:
        raise AocrError(
            f"{params_path(model_dir)} not found: is {model_dir} a model trained with `aocr train`? "
            "Pass --model-dir DIR."
        )
    return stored
