"""The command line as a user meets it: help for every verb, clear errors for wrong flags."""

import pytest

from aocr.cli import COMMANDS, build_parser
from tests.conftest import run_aocr

ORIGINAL_FLAGS = {
    "dataset": ["--log-step", "--no-force-uppercase", "--save-filename", "--full-ascii"],
    "train": ["--max-width", "--max-height", "--max-prediction", "--batch-size", "--num-epoch",
              "--steps-per-checkpoint", "--initial-learning-rate", "--target-embedding-size",
              "--attn-num-hidden", "--attn-num-layers", "--no-resume", "--max-gradient-norm",
              "--no-gradient-clipping", "--gpu-id", "--use-gru", "--log-path", "--model-dir", "--job-dir",
              "--full-ascii", "--color", "--no-force-uppercase"],
    "test": ["--visualize", "--output-dir", "--no-distance", "--model-dir", "--batch-size"],
    "predict": ["--visualize", "--output-dir", "--model-dir", "--batch-size"],
    "export": ["--format", "--model-dir"],
    "serve": ["--port", "--model-name"],
}


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_each_verb_has_help_with_the_original_flags(verb):
    result = run_aocr(verb, "--help")
    assert result.returncode == 0
    for flag in ORIGINAL_FLAGS[verb]:
        assert flag in result.stdout, f"{verb} --help lacks {flag}"


def test_defaults_follow_the_original():
    args = build_parser().parse_args(["train", "data.tfrecords"])
    assert (args.batch_size, args.steps_per_checkpoint, args.num_epoch) == (65, 100, 1000)
    assert (args.max_gradient_norm, args.model_dir, args.log_path) == (5.0, "./checkpoints", "aocr.log")
    args = build_parser().parse_args(["export"])
    assert (args.format, args.export_path) == ("savedmodel", "./exported")
    assert build_parser().parse_args(["test", "x"]).output_dir == "./results"


def test_python_dash_m_is_the_same_program():
    result = run_aocr("--version")
    assert result.returncode == 0 and result.stdout.startswith("aocr ")


def test_wrong_flag_is_a_usage_error_not_a_traceback(tmp_path):
    result = run_aocr("train", "data.tfrecords", "--max-widht", "10", cwd=tmp_path)
    assert result.returncode == 2
    assert "unrecognized arguments: --max-widht" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flag_value_names_the_flag(tmp_path):
    result = run_aocr("train", "data.tfrecords", "--batch-size", "zero", cwd=tmp_path)
    assert result.returncode == 2
    assert "--batch-size" in result.stderr and "Traceback" not in result.stderr


def test_job_dir_is_an_alias_of_model_dir():
    args = build_parser().parse_args(["train", "d", "--job-dir", "gs://bucket/job"])
    assert args.model_dir == "gs://bucket/job"
