"""The one table between the shape flags and ModelParams (aocr.cli.flags.SHAPE_FLAGS), in-process."""

import dataclasses

import pytest

from aocr.cli import build_parser
from aocr.cli.flags import SHAPE_FLAGS, explicit_shape
from aocr.core import defaults, params
from aocr.core.errors import AocrError
from aocr.core.params import ModelParams


def shape_of(*flags: str) -> dict:
    return explicit_shape(build_parser().parse_args(["train", "d.tfrecords", *flags]))


def test_the_table_covers_every_model_param_and_the_parser_has_every_flag():
    given = shape_of("--max-width", "200", "--max-height", "40", "--max-prediction", "5", "--charset", "0123",
                     "--no-force-uppercase", "--color", "--attn-num-hidden", "64", "--attn-num-layers", "1",
                     "--use-gru", "--target-embedding-size", "8", "--image-height", "48")
    assert given == {"max_width": 200, "max_height": 40, "max_prediction": 5, "charset": "0123",
                     "force_uppercase": False, "channels": 3, "attn_num_hidden": 64, "attn_num_layers": 1,
                     "use_gru": True, "target_embedding_size": 8, "image_height": 48}
    assert sorted(row.field for row in SHAPE_FLAGS) == sorted(field.name for field in dataclasses.fields(ModelParams))


def test_flags_not_given_are_absent():
    assert shape_of() == {}
    assert explicit_shape(build_parser().parse_args(["dataset", "a.txt"])) == {}


def test_full_ascii_sets_the_charset_and_keeps_case():
    assert shape_of("--full-ascii") == {"charset": defaults.FULL_ASCII_CHARSET, "force_uppercase": False}


def test_auto_and_raw_charsets_pass_through():
    assert shape_of("--max-width", "auto", "--max-prediction", "auto", "--charset", "auto") == {
        "max_width": "auto", "max_prediction": "auto", "charset": "auto"}
    assert shape_of("--charset", "labels/chars.txt") == {"charset": "labels/chars.txt"}


def test_auto_defers_to_a_stored_model(tmp_path):
    stored = ModelParams(max_width=200, charset="0123")
    explicit = shape_of("--max-width", "auto", "--max-height", "auto", "--charset", "auto")
    assert params.resolve(explicit, stored, str(tmp_path)) == stored


def test_auto_without_a_stored_model_names_the_flags(tmp_path):
    with pytest.raises(AocrError, match="--max-width auto --charset auto"):
        params.resolve(shape_of("--max-width", "auto", "--charset", "auto"), None, str(tmp_path))


def test_a_real_contradiction_still_names_the_flag(tmp_path):
    with pytest.raises(AocrError, match="--max-height gives max_height=40"):
        params.resolve(shape_of("--max-width", "auto", "--max-height", "40"), ModelParams(), str(tmp_path))


def test_full_ascii_against_a_digits_model_is_a_contradiction(tmp_path):
    with pytest.raises(AocrError, match="--charset/--full-ascii"):
        params.resolve(shape_of("--full-ascii"), ModelParams(), str(tmp_path))


def _fields(cls) -> dict:
    return {field.name: field.default for field in dataclasses.fields(cls)
            if field.default is not dataclasses.MISSING}


def test_every_training_setting_has_one_flag_whose_default_is_the_configs():
    from aocr.cli.train import config_from_args
    from aocr.training.trainer import TrainConfig

    config = config_from_args(build_parser().parse_args(["train", "d.tfrecords"]))
    assert dataclasses.asdict(config) == {"dataset": "d.tfrecords", "model_dir": defaults.MODEL_DIR,
                                          **_fields(TrainConfig)}
    changed = config_from_args(build_parser().parse_args(
        ["train", "d.tfrecords", "--max-gradient-norm", "2", "--no-gradient-clipping", "--no-resume", "--async",
         "--initial-learning-rate", "0.01", "--validation-split", "0", "--seed", "7"]))
    assert (changed.max_gradient_norm, changed.resume, changed.synchronous, changed.learning_rate,
            changed.validation_split, changed.seed) == (None, False, False, 0.01, 0.0, 7)


def test_every_serving_option_has_one_flag_whose_default_is_the_servers():
    from aocr.cli.serve import options_of
    from aocr.serving.server import ServeOptions

    served = options_of(build_parser().parse_args(["serve", "exported"]))
    assert dataclasses.asdict(served) == {"export_path": "exported", **_fields(ServeOptions)}
    labelled = options_of(build_parser().parse_args(
        ["serve", "exported", "--version-label", "stable=1", "--version-label", "canary=2", "--no-enable-batching"]))
    assert (labelled.version_labels, labelled.enable_batching) == (("stable=1", "canary=2"), False)
