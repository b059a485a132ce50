"""The command line as a user meets it: help for every verb, clear errors for wrong flags."""

import logging

import pytest

from aocr.cli import COMMANDS, build_parser, note_ignored_flags
from aocr.core import defaults
from tests.conftest import run_aocr

# Every flag of the original aocr (0.7.x, the last release) per subcommand, with a value
# unlike our default where it takes one; scripts written for it must run unchanged.
_ORIGINAL_MODEL_FLAGS = [
    ("--log-path", "other.log"), ("--max-width", "200"), ("--max-height", "40"), ("--max-prediction", "12"),
    ("--full-ascii", None), ("--color", None), ("--no-distance", None), ("--gpu-id", "0"), ("--use-gru", None),
    ("--attn-num-layers", "1"), ("--attn-num-hidden", "64"), ("--initial-learning-rate", "1.0"),
    ("--model-dir", "m"), ("--job-dir", "m"), ("--target-embedding-size", "8"), ("--output-dir", "out"),
    ("--max-gradient-norm", "3"), ("--no-gradient-clipping", None),
]
ORIGINAL_FLAGS = {
    "dataset": [("--log-path", "other.log"), ("--log-step", "100"), ("--no-force-uppercase", None),
                ("--save-filename", None)],
    "train": [*_ORIGINAL_MODEL_FLAGS, ("--steps-per-checkpoint", "50"), ("--batch-size", "64"),
              ("--num-epoch", "10"), ("--no-resume", None)],
    "test": [*_ORIGINAL_MODEL_FLAGS, ("--visualize", None)],
    "predict": _ORIGINAL_MODEL_FLAGS,
    "export": [*_ORIGINAL_MODEL_FLAGS, ("--format", "frozengraph")],
}
POSITIONAL = {"dataset": ["a.txt"], "train": ["d.tfrecords"], "test": ["d.tfrecords"], "predict": [], "export": []}


def _original_cases():
    return [(verb, flag, value) for verb, flags in ORIGINAL_FLAGS.items() for flag, value in flags]


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_each_verb_has_help_with_the_original_flags(verb):
    result = run_aocr(verb, "--help")
    assert result.returncode == 0
    expected = [flag for flag, _ in ORIGINAL_FLAGS.get(verb, [])] or ["--port", "--model-name"]
    for flag in expected:
        assert flag in result.stdout, f"{verb} --help lacks {flag}"


@pytest.mark.parametrize("verb, flag, value", _original_cases())
def test_every_original_flag_is_accepted_and_lands_on_args(verb, flag, value):
    """Each flag either changes what the verb reads or is named among the ignored ones."""
    plain = build_parser().parse_args([verb, *POSITIONAL[verb]])
    given = build_parser().parse_args([verb, *POSITIONAL[verb], flag, *([value] if value is not None else [])])
    assert vars(given) != vars(plain)


@pytest.mark.parametrize("verb", sorted(ORIGINAL_FLAGS))
def test_an_original_command_line_with_all_its_flags_parses(verb):
    argv = [verb, *POSITIONAL[verb]]
    for flag, value in ORIGINAL_FLAGS[verb]:
        argv += [flag] if value is None else [flag, value]
    assert build_parser().parse_args(argv).command == verb


@pytest.fixture
def aocr_log(caplog):
    """The aocr logger's records, even after setup_logging stopped it propagating to the root."""
    logger = logging.getLogger("aocr")
    propagate = logger.propagate
    logger.propagate = False  # each record once, through caplog's handler here
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="aocr")
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.propagate = propagate


def test_a_flag_without_meaning_here_is_ignored_with_a_note(aocr_log):
    args = build_parser().parse_args(["train", "d", "--no-distance", "--output-dir", "x", "--no-distance"])
    assert note_ignored_flags(args) == ["--no-distance", "--output-dir"]
    assert aocr_log.messages == ["--no-distance has no effect on train; ignored",
                                 "--output-dir has no effect on train; ignored"]


def test_a_flag_with_meaning_here_makes_no_note(aocr_log):
    args = build_parser().parse_args(["test", "d", "--no-distance", "--output-dir", "x", "--gpu-id", "1"])
    assert note_ignored_flags(args) == [] and aocr_log.messages == []
    assert (args.no_distance, args.output_dir, args.gpu_id) == (True, "x", 1)


def test_defaults_follow_the_original_but_the_training_batch():
    args = build_parser().parse_args(["train", "data.tfrecords"])
    assert (args.batch_size, args.steps_per_checkpoint, args.num_epoch) == (16, 100, 1000)
    assert build_parser().parse_args(["test", "data.tfrecords"]).batch_size == 65
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


def test_new_model_flags_parse_with_their_defaults():
    args = build_parser().parse_args(["train", "d"])
    assert (args.augment, args.validation_split, args.patience) == (
        defaults.AUGMENT, defaults.VALIDATION_SPLIT, defaults.PATIENCE)
    assert (args.max_minutes, args.init_from) == (None, None)
    args = build_parser().parse_args(["train", "d", "--augment", "none", "--validation-split", "0.5",
                                      "--patience", "3", "--max-minutes", "1.5", "--init-from", "other"])
    assert (args.augment, args.validation_split, args.patience, args.max_minutes, args.init_from) == (
        "none", 0.5, 3, 1.5, "other")
    assert build_parser().parse_args(["train", "d", "--validation-split", "0"]).validation_split == 0


@pytest.mark.parametrize("argv", [
    ["train", "d", "--validation-split", "0.6"], ["train", "d", "--validation-split", "-0.1"],
    ["train", "d", "--validation-split", "nan"], ["train", "d", "--patience", "0"],
    ["train", "d", "--max-minutes", "0"], ["train", "d", "--augment", "heavy"],
    ["train", "d", "--max-width", "0"], ["train", "d", "--max-height", "wide"],
    ["train", "d", "--charset", "0123", "--full-ascii"], ["test", "d", "--full-ascii", "--charset", "auto"],
])
def test_bad_values_and_conflicts_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert "error: argument" in capsys.readouterr().err


@pytest.mark.parametrize("verb, positional", [("test", ["d"]), ("predict", []), ("export", [])])
def test_checkpoint_choice_on_the_verbs_that_load_one(verb, positional):
    assert build_parser().parse_args([verb, *positional]).checkpoint == defaults.CHECKPOINT
    for choice in ("best", "latest", "m/model.ckpt-100"):
        assert build_parser().parse_args([verb, *positional, "--checkpoint", choice]).checkpoint == choice


def test_sizes_take_auto_and_the_charset_any_string():
    args = build_parser().parse_args(["train", "d", "--max-width", "auto", "--max-height", "40",
                                      "--max-prediction", "auto", "--charset", "chars.txt"])
    assert (args.max_width, args.max_height, args.max_prediction, args.charset) == ("auto", 40, "auto", "chars.txt")
