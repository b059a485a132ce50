"""`aocr train` and `aocr test` on real TFRecords and checkpoints."""

import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from PIL import Image

from aocr.core import params, savedmodel
from aocr.inference.recognizer import Recognizer
from tests.conftest import TINY_SHAPE, TRAINED_STEPS, render_images, run_aocr, write_annotations

SUMMARY = re.compile(r"word accuracy: ([\d.]+)%, character accuracy: ([\d.]+)% \((\d+) images\)")


def score(dataset, model_dir, *flags, cwd):
    result = run_aocr("test", str(dataset), "--model-dir", str(model_dir), *flags, cwd=cwd)
    assert result.returncode == 0, result.stderr
    match = SUMMARY.search(result.stderr)
    assert match, result.stderr
    return float(match.group(1)), float(match.group(2)), int(match.group(3)), result


def test_tiny_model_learns_the_set_and_test_needs_only_model_dir(trained_model, digits_set):
    words, chars, count, _ = score(digits_set.tfrecords, trained_model, cwd=trained_model.parent)
    assert count == 200
    assert words >= 90.0 and chars >= 95.0
    stored = params.load(str(trained_model))
    assert (stored.max_width, stored.max_height, stored.max_prediction) == (120, 32, 4)
    assert tf.train.latest_checkpoint(str(trained_model)).endswith(f"model.ckpt-{TRAINED_STEPS}")


def test_no_distance_and_verbose_per_image_lines(trained_model, digits_set):
    """--no-distance: the progress lines (every 10 chunks of 4 batches, here 80 images) give word accuracy."""
    *_, result = score(digits_set.tfrecords, trained_model, "--no-distance", "-v", "--batch-size", "2",
                       cwd=trained_model.parent)
    assert result.stderr.count("probability") >= 200
    progress = [line for line in result.stderr.splitlines() if "INFO test: " in line]
    assert len(progress) == 2 and all(", word accuracy " in line for line in progress), progress


def test_test_rejects_a_contradicting_shape_flag(trained_model, digits_set, aocr_main):
    result = aocr_main("test", str(digits_set.tfrecords), "--model-dir", str(trained_model), "--max-width", "500")
    assert result.returncode != 0
    assert "--max-width" in result.stderr and "500" in result.stderr and "120" in result.stderr
    assert "Traceback" not in result.stderr


def test_resume_continues_the_global_step(digits_set, tmp_path, aocr_main):
    model = str(tmp_path / "m")
    common = ["train", str(digits_set.tfrecords), "--model-dir", model, "--batch-size", "8"]
    assert aocr_main(*common, *TINY_SHAPE, "--max-steps", "3").returncode == 0
    assert tf.train.latest_checkpoint(model).endswith("-3")
    result = aocr_main(*common, "--max-steps", "5")  # shapes from params.json
    assert result.returncode == 0, result.stderr
    assert "resumed from" in result.stderr and "training from step 3" in result.stderr
    assert tf.train.latest_checkpoint(model).endswith("-5")


def test_resume_with_other_shape_flags_is_an_error_naming_both(digits_set, tmp_path, aocr_main):
    model = str(tmp_path / "m")
    common = ["train", str(digits_set.tfrecords), "--model-dir", model, "--batch-size", "8"]
    assert aocr_main(*common, *TINY_SHAPE, "--max-steps", "1").returncode == 0
    result = aocr_main(*common, "--max-prediction", "6", "--max-steps", "2")
    assert result.returncode != 0
    assert "--max-prediction" in result.stderr and "6" in result.stderr and "4" in result.stderr
    assert aocr_main(*common, "--max-prediction", "6", "--max-steps", "1", "--no-resume").returncode == 0
    assert params.load(model).max_prediction == 6


def test_sigint_saves_a_loadable_checkpoint_and_exits_zero(digits_set, tmp_path):
    model = tmp_path / "m"
    process = subprocess.Popen(
        [sys.executable, "-m", "aocr", "train", str(digits_set.tfrecords), "--model-dir", str(model), *TINY_SHAPE,
         "--batch-size", "8", "--steps-per-checkpoint", "100000"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "training from step" in line or time.monotonic() > deadline:
            break
    time.sleep(3)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=120)[1], None
    stderr = "".join(lines) + rest
    assert process.returncode == 0, stderr
    assert "SIGINT received" in stderr and "Traceback" not in stderr
    checkpoint = tf.train.latest_checkpoint(str(model))
    assert checkpoint is not None and int(checkpoint.rsplit("-", 1)[1]) > 0
    score(digits_set.tfrecords, model, cwd=tmp_path)


def checkpoint_shapes(model_dir):
    return dict(tf.train.list_variables(tf.train.latest_checkpoint(str(model_dir))))


# Each variant flag, and what its checkpoint or training log must show if the flag took effect.
VARIANTS = {
    "gru": (["--use-gru"], lambda shapes, log: "decoder/layer1/gate_kernel" in shapes
            and "decoder/layer1/kernel" not in shapes),
    "3-layers": (["--attn-num-layers", "3"], lambda shapes, log: "decoder/layer3/kernel" in shapes),
    "full-ascii": (["--full-ascii"], lambda shapes, log: shapes["ctc/bias"][0] > 90),
    "color": (["--color"], lambda shapes, log: shapes["cnn/conv1/weights"] == [3, 3, 3, 32]),
    "compact-cnn": ([], lambda shapes, log: shapes["cnn/conv7/weights"] == [2, 2, 128, 256]
                    and shapes["encoder/forward/kernel"] == [256 + 64, 4 * 64]),
    "original-cnn": (["--cnn", "original"], lambda shapes, log: shapes["cnn/conv7/weights"] == [2, 2, 512, 512]
                     and shapes["encoder/forward/kernel"] == [512 + 128, 4 * 128]),
    "adadelta": (["--optimizer", "adadelta", "--initial-learning-rate", "1.0"],
                 lambda shapes, log: "ctc/kernel/Adadelta" in shapes and "adadelta at 1" in log),
    "float32": (["--precision", "float32"], lambda shapes, log: "float32 convolutions" in log),
    "bfloat16": (["--precision", "bfloat16"], lambda shapes, log: "bfloat16 convolutions" in log),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_variants_train_and_predict(digits_set, tmp_path, name, aocr_main):
    """In-process, through the real command line: two steps of training, then one prediction."""
    variant, took_effect = VARIANTS[name]
    model = str(tmp_path / "m")
    shape = list(TINY_SHAPE)
    if "--attn-num-layers" in variant:
        index = shape.index("--attn-num-layers")
        del shape[index:index + 2]
    trained = aocr_main("train", str(digits_set.tfrecords), "--model-dir", model, *shape, *variant,
                        "--batch-size", "4", "--max-steps", "2")
    assert trained.returncode == 0, trained.stderr
    assert took_effect(checkpoint_shapes(model), trained.stderr)
    predicted = aocr_main("predict", str(digits_set.images[0]), "--model-dir", model)
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.startswith(f"{digits_set.images[0]}\t")


def test_image_height_is_stored_and_used_by_predict_and_the_export(digits_set, tmp_path, aocr_main):
    model = str(tmp_path / "m")
    trained = aocr_main("train", str(digits_set.tfrecords), "--model-dir", model, *TINY_SHAPE, "--image-height", "48",
                        "--batch-size", "4", "--max-steps", "2")
    assert trained.returncode == 0, trained.stderr
    stored = params.require(model)
    assert stored.image_height == 48
    image = digits_set.images[0].read_bytes()
    width, height = Image.open(digits_set.images[0]).size
    recognizer = Recognizer.load(model, stored)
    try:
        [result] = recognizer.recognize([image], 1)
    finally:
        recognizer.close()
    assert result.width == 4 * round(width * 48 / height / 4)  # resized to height 48, not 32
    exported = aocr_main("export", str(tmp_path / "export"), "--model-dir", model)
    assert exported.returncode == 0, exported.stderr
    loaded = savedmodel.load(str(tmp_path / "export" / "1"))
    try:
        pixels = loaded.meta_graph.signature_def["pixels"].inputs["images"].tensor_shape
    finally:
        loaded.close()
    assert [dim.size for dim in pixels.dim] == [-1, 48, -1, 1]


def test_labels_outside_the_charset_are_reported_not_a_crash(tmp_path, aocr_main):
    images = render_images(tmp_path / "imgs", ["12", "34", "5-6"])
    write_annotations(tmp_path / "a.txt", list(zip(images, ["12", "34", "5-6"], strict=True)))
    records = str(tmp_path / "d.tfrecords")
    assert aocr_main("dataset", str(tmp_path / "a.txt"), records).returncode == 0
    result = aocr_main("train", records, "--model-dir", str(tmp_path / "m"), *TINY_SHAPE, "--charset", "0123456789",
                       "--batch-size", "2", "--max-steps", "1")
    assert result.returncode == 0, result.stderr
    assert "outside the charset" in result.stderr and "'-'" in result.stderr
    assert "3 records in 1 file(s), 2 usable" in result.stderr


def test_train_on_a_missing_dataset_is_a_clear_error(tmp_path, aocr_main):
    result = aocr_main("train", str(tmp_path / "nothing.tfrecords"), "--model-dir", str(tmp_path / "m"))
    assert result.returncode != 0
    assert "nothing.tfrecords" in result.stderr and "Traceback" not in result.stderr
