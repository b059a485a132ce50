"""params.json: written by train, read by the other verbs, contradictions named."""

import json

import pytest

from aocr.core import params
from aocr.core.errors import AocrError
from aocr.core.params import ModelParams


def test_round_trip(tmp_path):
    original = ModelParams(max_width=200, max_height=48, charset="0123-", use_gru=True, channels=3)
    params.save(str(tmp_path), original)
    assert params.load(str(tmp_path)) == original


def test_flags_not_given_come_from_the_model(tmp_path):
    stored = ModelParams(max_width=200)
    assert params.resolve({}, stored, str(tmp_path)) == stored
    assert params.resolve({"max_width": 200}, stored, str(tmp_path)) == stored


def test_contradiction_names_both_values(tmp_path):
    with pytest.raises(AocrError) as error:
        params.resolve({"max_width": 100}, ModelParams(max_width=200), str(tmp_path))
    assert "--max-width" in str(error.value) and "100" in str(error.value) and "200" in str(error.value)


def test_model_width_follows_the_aspect_ratio():
    assert ModelParams(max_width=160, max_height=60).image_width == 88
    assert ModelParams(max_width=200, max_height=48).image_width == 136


def test_corrupt_params_file_is_a_clear_error(tmp_path):
    (tmp_path / "params.json").write_text("{not json")
    with pytest.raises(AocrError, match="params.json"):
        params.load(str(tmp_path))


# A params.json of the first format, as an aocr of before --image-height wrote it.
FIRST_FORMAT = {"max_width": 160, "max_height": 60, "max_prediction": 8, "charset": "0123456789",
                "force_uppercase": True, "channels": 1, "attn_num_hidden": 128, "attn_num_layers": 2,
                "use_gru": False, "target_embedding_size": 10}


def test_a_params_file_from_before_image_height_reads_as_32(tmp_path):
    (tmp_path / "params.json").write_text(json.dumps(FIRST_FORMAT))
    loaded = params.load(str(tmp_path))
    assert loaded.image_height == 32 and loaded.image_width == 88


@pytest.mark.parametrize("height", [8, 200])
def test_an_image_height_out_of_range_is_a_clear_error(height):
    with pytest.raises(AocrError, match=f"--image-height must be 16 to 128, got {height}"):
        ModelParams(image_height=height)


def test_image_height_scales_the_input_width():
    assert ModelParams(max_width=160, max_height=60, image_height=64).image_width == 172


def test_a_params_file_from_before_the_cnn_choice_reads_as_the_original_network(tmp_path):
    (tmp_path / "params.json").write_text(json.dumps({**FIRST_FORMAT, "image_height": 32}))
    loaded = params.load(str(tmp_path))
    assert loaded.cnn == "original" and loaded.encoder_units == 256


def test_a_new_model_has_the_compact_network_and_its_format_version(tmp_path):
    params.save(str(tmp_path), ModelParams())
    stored = json.loads((tmp_path / "params.json").read_text())
    assert stored["cnn"] == "compact" and stored["format_version"] == params.FORMAT_VERSION
    assert params.load(str(tmp_path)).encoder_units == 128


def test_a_params_file_from_a_newer_aocr_is_a_clear_error(tmp_path):
    stored = json.loads(ModelParams().to_json())
    stored["format_version"] = params.FORMAT_VERSION + 1
    (tmp_path / "params.json").write_text(json.dumps(stored))
    with pytest.raises(AocrError, match="newer aocr"):
        params.load(str(tmp_path))


def test_an_unknown_cnn_is_a_clear_error():
    with pytest.raises(AocrError, match="--cnn must be one of compact, original"):
        ModelParams(cnn="resnet")


def test_a_params_file_from_before_the_decoder_choice_reads_as_an_attention_model(tmp_path):
    second_format = {**FIRST_FORMAT, "image_height": 32, "cnn": "compact", "format_version": 2}
    (tmp_path / "params.json").write_text(json.dumps(second_format))
    loaded = params.load(str(tmp_path))
    assert loaded.decoder == "attention" and loaded.decoders == ("attention", "ctc", "joint")
    assert ModelParams(decoder="ctc").decoders == ("ctc",)
    with pytest.raises(AocrError, match="--decoder must be one of attention, ctc"):
        ModelParams(decoder="joint")  # a reading, not a model
