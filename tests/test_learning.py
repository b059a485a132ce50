"""What makes the defaults learn: augmentation, the alignment prior, the validation split, the best
checkpoint, early stopping, the time budget and fine-tuning from another model."""

import contextlib
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from aocr.core import defaults
from aocr.core.params import ModelParams
from aocr.core.session import choose_checkpoint, validated_decoder
from aocr.data.augment import augment
from aocr.data.holdout import split_scan
from aocr.data.records import expand_dataset_paths
from aocr.inference.metrics import Accuracy
from aocr.model.model import alignment_prior_loss
from aocr.training.checkpoints import Checkpointer, load_best_score
from aocr.training.warm_start import class_mapping
from tests.conftest import TINY_SHAPE, run_aocr

tf1 = tf.compat.v1


def test_augmentation_keeps_the_contract_and_changes_the_pixels():
    image = tf.constant(np.tile(np.linspace(0, 255, 64, dtype=np.float32), (32, 1))[:, :, None])
    for level in ("light", "strong"):
        out, width = augment(image, tf.constant(64), level, max_width=80)
        out, width = out.numpy(), int(width)
        assert width % 4 == 0 and 4 <= width <= 80
        assert out.shape == (32, width, 1) and out.min() >= 0 and out.max() <= 255
        if width == 64:
            assert np.abs(out - image.numpy()).mean() > 1.0
    same, width = augment(image, tf.constant(64), "none", max_width=80)
    assert int(width) == 64 and np.array_equal(same.numpy(), image.numpy())


def test_alignment_prior_prefers_attention_that_walks_along_the_text():
    steps, columns = 4, 12
    label_ids = tf.constant([[1, 3, 4, 5, 2]])  # GO, three characters, EOS
    diagonal = np.zeros((1, steps, columns), np.float32)
    for step in range(3):
        diagonal[0, step, 4 * step + 2] = 1.0
    stuck = np.zeros((1, steps, columns), np.float32)
    stuck[0, :, 0] = 1.0
    on_diagonal = float(alignment_prior_loss(tf.constant(diagonal), tf.constant([columns]), label_ids))
    on_first_column = float(alignment_prior_loss(tf.constant(stuck), tf.constant([columns]), label_ids))
    assert on_diagonal < 0.05 < 0.5 < on_first_column


def test_validation_split_is_stable_and_disjoint(digits_set):
    params = ModelParams(**{"max_width": 120, "max_height": 32, "max_prediction": 4, "charset": "0123456789"})
    files = expand_dataset_paths(str(digits_set.tfrecords))
    first, again, none = split_scan(files, params, 0.1), split_scan(files, params, 0.1), split_scan(files, params, 0)
    assert 5 <= first.held_out <= 40
    assert [label for _, label in first.validation] == [label for _, label in again.validation]
    assert first.training.usable + first.held_out == none.training.usable == first.training.usable_in_all
    assert none.held_out == 0 and not none.validation
    held_images = {image for image, _ in first.validation}
    kept_positions = np.flatnonzero(first.training.keep)
    assert len(kept_positions) == none.training.usable - first.held_out
    assert len(held_images) == first.held_out


class _ScriptedValidation:
    """Validation scores and the readings that made them, read from lists, one per checkpoint (the
    checkpointer's decisions are under test)."""

    def __init__(self, word_accuracies, decoders):
        self.word_accuracies, self.decoders = list(word_accuracies), list(decoders)

    def run(self, writer, step):
        accuracy = Accuracy(images=100, correct_words=int(100 * self.word_accuracies.pop(0)))
        return self.decoders.pop(0), accuracy


@contextlib.contextmanager
def _one_weight(max_to_keep):
    """(session, weight, saver) of a graph holding one scalar variable, initialized to 0."""
    with tf.Graph().as_default():
        weight = tf1.get_variable("weight", [], initializer=tf1.zeros_initializer())
        saver = tf1.train.Saver(max_to_keep=max_to_keep)
        with tf1.Session() as session:
            session.run(weight.initializer)
            yield session, weight, saver


def test_best_checkpoint_survives_rotation_and_is_chosen(tmp_path):
    model_dir = str(tmp_path / "model")
    with _one_weight(2) as (session, weight, saver):
        scores = _ScriptedValidation([0.1, 0.5, 0.3, 0.2, 0.2, 0.5], ["attention", "ctc"] + ["attention"] * 4)
        checkpointer = Checkpointer(model_dir, ModelParams(), saver, scores, writer=None)
        for step in range(1, 6):
            session.run(weight.assign(float(step)))
            checkpointer.save(session, step, elapsed=float(step))
        assert tf.train.latest_checkpoint(model_dir).endswith("model.ckpt-5")
        assert not tf.io.gfile.exists(f"{model_dir}/model.ckpt-2.index")  # rotated away
        assert choose_checkpoint(model_dir, "best").endswith("best/model.ckpt-2")
        assert choose_checkpoint(model_dir, "latest").endswith("model.ckpt-5")
        assert load_best_score(model_dir).step == 2 and checkpointer.since_best == 3
        assert validated_decoder(model_dir) == "ctc"  # the reading that scored the best checkpoint
        session.run(weight.assign(6.0))
        checkpointer.save(session, 6, elapsed=6.0)  # as good as step 2 and newer: kept, but no improvement
        assert choose_checkpoint(model_dir, "best").endswith("best/model.ckpt-6") and checkpointer.since_best == 4
        assert validated_decoder(model_dir) == "attention"
        assert sorted(path.name for path in (tmp_path / "model" / "best").glob("model.ckpt-*")) == [
            "model.ckpt-6.data-00000-of-00001", "model.ckpt-6.index"]  # the step-2 files are gone
        session.run(weight.assign(0.0))
        saver.restore(session, choose_checkpoint(model_dir, "best"))
        assert session.run(weight) == 6.0


def test_a_new_best_stopped_before_its_checkpoint_file_is_still_the_best(tmp_path):
    """Training killed between writing best.json and pointing best/checkpoint at the new step: the best
    checkpoint is the one best.json scores, so the score, the reading and the weights agree."""
    model_dir = str(tmp_path / "model")
    with _one_weight(5) as (session, weight, saver):
        checkpointer = Checkpointer(model_dir, ModelParams(), saver, _ScriptedValidation([0.1, 0.5], ["attention",
                                                                                                      "ctc"]), None)
        for step in (1, 2):
            session.run(weight.assign(float(step)))
            checkpointer.save(session, step, elapsed=float(step))
        best = tmp_path / "model" / "best"
        older = saver.save(session, str(best / "model.ckpt-1"), write_meta_graph=False)
        tf1.train.update_checkpoint_state(str(best), older)  # the pointer still at the old best
        assert load_best_score(model_dir).step == 2
        assert choose_checkpoint(model_dir, "best").endswith("best/model.ckpt-2")
        assert validated_decoder(model_dir) == "ctc"


def test_fine_tuning_carries_the_rows_of_shared_characters():
    source, target = ModelParams(charset="0123456789"), ModelParams(charset="9AB0")
    target_ids, source_ids = class_mapping(source, target)
    assert list(zip(target_ids, source_ids, strict=True)) == [(0, 0), (1, 1), (2, 2), (3, 12), (6, 3)]


@pytest.fixture(scope="module")
def best_model(digits_set, tmp_path_factory):
    """A tiny model trained with a validation split, early stopping at a learning rate too small to learn."""
    model_dir = tmp_path_factory.mktemp("best") / "m"
    result = run_aocr("train", str(digits_set.tfrecords), "--model-dir", str(model_dir), *TINY_SHAPE,
                      "--batch-size", "8", "--steps-per-checkpoint", "1", "--max-steps", "200", "--patience", "2",
                      "--validation-split", "0.1", "--initial-learning-rate", "1e-9", "--augment", "none",
                      cwd=model_dir.parent)
    assert result.returncode == 0, result.stderr
    return model_dir, result.stderr


def test_early_stopping_stops_and_test_uses_the_best_checkpoint(best_model, digits_set, aocr_main):
    model_dir, log = best_model
    assert "held out for validation" in log and "stopping early (--patience)" in log
    stopped = int(re.search(r"stopped at step (\d+)", log).group(1))
    assert stopped < 20
    best = load_best_score(str(model_dir))
    assert best is not None
    tested = aocr_main("test", str(digits_set.tfrecords), "--model-dir", str(model_dir))
    assert tested.returncode == 0, tested.stderr
    assert f"best validated checkpoint, {model_dir}/best/model.ckpt-{best.step}" in tested.stderr
    latest = aocr_main("test", str(digits_set.tfrecords), "--model-dir", str(model_dir), "--checkpoint", "latest")
    assert f"latest checkpoint, {model_dir}/model.ckpt-{stopped}" in latest.stderr


def test_init_from_starts_a_new_charset_from_a_trained_model(trained_model, digits_set, tmp_path, aocr_main):
    result = aocr_main("train", str(digits_set.tfrecords), "--model-dir", str(tmp_path / "tuned"), "--init-from",
                       str(trained_model), "--charset", "0123456789X", "--max-steps", "2", "--batch-size", "8",
                       "--max-width", "120", "--max-height", "32", "--max-prediction", "4")
    assert result.returncode == 0, result.stderr
    assert "10 of this model's 11 characters carried, 1 new" in result.stderr
    assert "training from step 0" in result.stderr
    assert "rises to its full value over the first 100 steps" in result.stderr

    def words(model_dir: Path) -> float:
        tested = aocr_main("test", str(digits_set.tfrecords), "--model-dir", str(model_dir))
        return float(re.search(r"word accuracy: ([\d.]+)%", tested.stderr).group(1))

    # Two steps from the trained model keep what it reads (from scratch they read nothing; without
    # the warm-up Adam's first full-rate steps cost up to 24 points here).
    assert words(tmp_path / "tuned") >= words(trained_model) - 3.0


def test_init_from_a_model_of_another_size_names_both_values(trained_model, digits_set, tmp_path, aocr_main):
    result = aocr_main("train", str(digits_set.tfrecords), "--model-dir", str(tmp_path / "other"), "--init-from",
                       str(trained_model), "--attn-num-hidden", "32", "--max-steps", "1")
    assert result.returncode != 0
    assert "--attn-num-hidden" in result.stderr and "64" in result.stderr and "32" in result.stderr
    assert "Traceback" not in result.stderr


def test_max_minutes_stops_training(digits_set, tmp_path, aocr_main):
    result = aocr_main("train", str(digits_set.tfrecords), "--model-dir", str(tmp_path / "m"), *TINY_SHAPE,
                       "--batch-size", "4", "--max-minutes", "0.02", "--steps-per-checkpoint", "100000")
    assert result.returncode == 0, result.stderr
    assert "--max-minutes reached" in result.stderr
    assert int(re.search(r"stopped at step (\d+)", result.stderr).group(1)) < 1000


def test_the_rate_decays_over_the_end_of_a_known_budget():
    from aocr.model.optimize import rate_scale
    from aocr.training.loop import Limits

    assert rate_scale(0.0) == rate_scale(0.6) == 1.0
    assert 0.05 < rate_scale(0.8) < rate_scale(0.7) < 1.0 and rate_scale(1.0) == pytest.approx(0.05)
    by_steps = Limits(total_steps=1000, steps_per_checkpoint=100)
    assert by_steps.budget_used(700, elapsed=10.0) == pytest.approx(0.7)
    by_time = Limits(total_steps=10**6, steps_per_checkpoint=100, max_seconds=300.0)
    assert by_time.budget_used(700, elapsed=240.0) == pytest.approx(0.8)
    resumed = Limits(total_steps=6000, steps_per_checkpoint=100, start_step=5000)
    assert resumed.budget_used(5500, elapsed=10.0) == pytest.approx(0.5)


def test_adams_rate_is_scaled_down_below_batch_32_and_not_up_above_it():
    from aocr.training.trainer import TrainConfig

    rates = {batch: TrainConfig("d", "m", batch_size=batch).effective_learning_rate for batch in (8, 16, 32, 65, 128)}
    assert rates[8] == pytest.approx(0.001) and rates[16] == pytest.approx(0.002 * 0.5**0.5)
    assert rates[32] == rates[65] == rates[128] == pytest.approx(0.002)
    given = TrainConfig("d", "m", batch_size=8, learning_rate=0.01)
    assert given.effective_learning_rate == pytest.approx(0.005)
    assert TrainConfig("d", "m", batch_size=8, optimizer="adadelta").effective_learning_rate == 1.0


# A smaller model than TINY_SHAPE: these runs test what training says, not what it learns.
SMALLEST = ["--max-width", "120", "--max-height", "32", "--max-prediction", "4", "--attn-num-hidden", "32",
            "--attn-num-layers", "1"]


def test_a_split_leaving_less_than_a_batch_is_an_error_before_training(digits_set, tmp_path, aocr_main):
    result = aocr_main("train", str(digits_set.tfrecords), "--model-dir", str(tmp_path / "m"), *SMALLEST,
                       "--batch-size", "195", "--validation-split", "0.05", "--max-steps", "2")
    assert result.returncode == 1, result.stderr
    numbers = re.search(r"--validation-split 0.05 holds out (\d+) of the 200 usable records, leaving (\d+) to "
                        r"train on: less than one batch \(--batch-size 195\)", result.stderr)
    assert numbers and int(numbers.group(1)) + int(numbers.group(2)) == 200, result.stderr
    assert "--validation-split 0 to train without validation" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "m").exists()


def test_a_resumed_run_says_which_settings_changed(digits_set, tmp_path, aocr_main):
    def train(steps, *flags):
        # half held out leaves about 100 records: ten passes over them take about 70 steps
        result = aocr_main("train", str(digits_set.tfrecords), "--model-dir", str(tmp_path / "m"), *SMALLEST,
                           "--batch-size", "16", "--validation-split", "0.5", "--max-steps", steps,
                           "--steps-per-checkpoint", "1000", *flags)
        assert result.returncode == 0, result.stderr
        return result.stderr

    first = train("1")
    distorted_from = 10 * -(-int(re.search(r"(\d+) to train on", first).group(1)) // 16)
    undistorted = f"--augment auto: the images as they are until step {distorted_from} (10 passes"
    assert undistorted in first
    same = train(str(distorted_from + 1), "--augment", "auto")
    assert "resumed from" in same and "resuming with" not in same
    assert undistorted in same  # counted from step 0, not from where the resumed run starts
    assert f"step {distorted_from}: 10 passes over the training set are done, light distortions from here" in same
    changed = train(str(distorted_from + 2), "--initial-learning-rate", "0.0005")
    assert f"resuming with --initial-learning-rate 0.0005 (was {defaults.LEARNING_RATES['adam']:g})" in changed
    assert "--augment auto: 10 passes over the training set are done, light distortions from here" in changed
    assert f"training from step {distorted_from + 1}" in changed


def test_a_truncated_file_is_reported_once(digits_set, tmp_path, aocr_main):
    data = digits_set.tfrecords.read_bytes()
    (tmp_path / "cut.tfrecords").write_bytes(data[:len(data) * 3 // 4])
    result = aocr_main("train", str(tmp_path / "cut.tfrecords"), "--model-dir", str(tmp_path / "m"), *SMALLEST,
                       "--batch-size", "8", "--validation-split", "0.2", "--max-steps", "1")
    assert result.returncode == 0, result.stderr
    assert "records held out for validation" in result.stderr
    assert result.stderr.count("is truncated or corrupt") == 1, result.stderr
