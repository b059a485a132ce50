"""params.json: written by train, read by the other verbs, contradictions named."""

import pytest

from aocr import params
from aocr.errors import AocrError
from aocr.params import ModelParams


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
