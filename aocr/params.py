"""params.json: the shape-defining settings of a model, written by train and read by every other verb."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from aocr import defaults
from aocr.charset import Charset
from aocr.errors import AocrError
from aocr.fileio import join, read_bytes, write_bytes_atomic

PARAMS_FILE = "params.json"

# The command-line flag that sets each field, for messages.
FLAG_OF = {
    "max_width": "--max-width",
    "max_height": "--max-height",
    "max_prediction": "--max-prediction",
    "charset": "--full-ascii/--charset",
    "force_uppercase": "--no-force-uppercase",
    "channels": "--color",
    "attn_num_hidden": "--attn-num-hidden",
    "attn_num_layers": "--attn-num-layers",
    "use_gru": "--use-gru",
    "target_embedding_size": "--target-embedding-size",
}


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

    def __post_init__(self) -> None:
        for name in ("max_width", "max_height", "max_prediction", "attn_num_hidden",
                     "attn_num_layers", "target_embedding_size"):
            if getattr(self, name) < 1:
                raise AocrError(f"{FLAG_OF[name]} must be at least 1, got {getattr(self, name)}")
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
        """Widest input the CNN sees: the maximum original size scaled to height 32, a multiple of 4."""
        scaled = math.ceil(self.max_width / self.max_height * defaults.IMAGE_HEIGHT)
        return max(4, 4 * math.ceil(scaled / 4))

    @property
    def decoder_steps(self) -> int:
        """Decoder steps: up to max_prediction characters, then EOS."""
        return self.max_prediction + 1

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"


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
    values); without one, unset fields take their defaults.
    """
    if stored is None:
        return ModelParams(**explicit)
    conflicts = [
        f"{FLAG_OF[name]} gives {name}={value!r} but {params_path(model_dir)} has {getattr(stored, name)!r}"
        for name, value in explicit.items()
        if getattr(stored, name) != value
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
