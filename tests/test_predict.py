"""`aocr predict`: paths as arguments, directories or stdin; tab-separated answers; bad files reported."""

import subprocess
import sys
from pathlib import Path

import tensorflow as tf

from aocr.core import params
from aocr.core.params import Decoding
from aocr.inference.recognizer import Recognizer
from tests.conftest import run_aocr


def parse(stdout):
    rows = [line.split("\t") for line in stdout.splitlines()]
    assert all(len(row) == 3 for row in rows), stdout
    return [(path, text, float(probability)) for path, text, probability in rows]


def test_arguments_give_one_line_per_image_in_order(trained_model, digits_set):
    paths = [str(p) for p in digits_set.images[:20]]
    result = run_aocr("predict", *paths, "--model-dir", str(trained_model), cwd=trained_model.parent)
    assert result.returncode == 0, result.stderr
    rows = parse(result.stdout)
    assert [row[0] for row in rows] == paths
    assert all(0.0 <= row[2] <= 1.0 for row in rows)
    correct = sum(text == label for (_, text, _), label in zip(rows, digits_set.labels, strict=False))
    assert correct >= 18


def test_stdin_paths_and_directories(trained_model, digits_set, aocr_main):
    paths = [str(p) for p in digits_set.images[:10]]
    piped = run_aocr("predict", "--model-dir", str(trained_model), stdin="\n".join(paths) + "\n",
                     cwd=trained_model.parent)
    assert piped.returncode == 0, piped.stderr
    assert [row[0] for row in parse(piped.stdout)] == paths
    directory = aocr_main("predict", str(digits_set.images[0].parent), "--model-dir", str(trained_model))
    assert directory.returncode == 0
    assert len(parse(directory.stdout)) == len(digits_set.images)


def test_batched_answers_equal_one_at_a_time(trained_model, digits_set, aocr_main):
    paths = [str(p) for p in digits_set.images[:30]]
    batched = aocr_main("predict", *paths, "--model-dir", str(trained_model), "--batch-size", "64")
    single = aocr_main("predict", *paths, "--model-dir", str(trained_model), "--batch-size", "1")
    one, many = parse(single.stdout), parse(batched.stdout)
    assert [r[1] for r in one] == [r[1] for r in many]
    assert all(abs(a[2] - b[2]) < 1e-3 for a, b in zip(one, many, strict=True))


def test_unreadable_files_are_reported_and_the_rest_go_on(trained_model, digits_set, tmp_path, aocr_main):
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    good = str(digits_set.images[0])
    result = aocr_main("predict", str(tmp_path / "missing.png"), good, str(not_image), "--model-dir",
                       str(trained_model))
    assert result.returncode == 0
    assert [row[0] for row in parse(result.stdout)] == [good]
    assert "missing.png" in result.stderr and "notes.png" in result.stderr and "Traceback" not in result.stderr


def test_the_python_api_example_reads_as_predict_does_and_names_what_it_cannot(trained_model, digits_set, tmp_path,
                                                                               aocr_main):
    """examples/read_images.py: the Recognizer as a user's program uses it, a bad file among good ones."""
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    paths = [str(digits_set.images[0]), str(not_image), str(digits_set.images[1])]
    script = Path(__file__).resolve().parent.parent / "examples" / "read_images.py"
    result = subprocess.run([sys.executable, str(script), str(trained_model), *paths], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    predicted = aocr_main("predict", paths[0], paths[2], "--model-dir", str(trained_model))
    assert [row[:2] for row in parse(result.stdout)] == [row[:2] for row in parse(predicted.stdout)]
    assert f"{not_image}: skipped, " in result.stderr and "Traceback" not in result.stderr


def test_no_readable_image_exits_non_zero(trained_model, tmp_path, aocr_main):
    result = aocr_main("predict", str(tmp_path / "missing.png"), "--model-dir", str(trained_model))
    assert result.returncode != 0 and result.stdout == ""
    assert "missing.png" in result.stderr and "Traceback" not in result.stderr


def test_predict_without_a_trained_model_says_how_to_get_one(tmp_path, digits_set):
    result = run_aocr("predict", str(digits_set.images[0]), "--model-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert result.returncode != 0
    assert "params.json" in result.stderr and "aocr train" in result.stderr and "Traceback" not in result.stderr


def test_precision_bfloat16_convolves_in_bfloat16_and_reads_as_float32_does(trained_model, digits_set, aocr_main):
    stored = params.require(str(trained_model))
    images = [path.read_bytes() for path in digits_set.images[:40]]
    texts, conv_types = {}, {}
    for precision in ("float32", "bfloat16"):
        recognizer = Recognizer.load(str(trained_model), stored, decoding=Decoding(precision=precision))
        try:
            texts[precision] = [result.text for result in recognizer.recognize(images, 40)]
            conv_types[precision] = {op.get_attr("T") for op in recognizer.session.graph.get_operations()
                                     if op.type == "Conv2D"}
        finally:
            recognizer.close()
    assert conv_types == {"float32": {tf.float32}, "bfloat16": {tf.bfloat16}}
    assert sum(a == b for a, b in zip(texts["float32"], texts["bfloat16"], strict=True)) >= 38
    tested = aocr_main("test", str(digits_set.tfrecords), "--model-dir", str(trained_model), "--precision", "bfloat16")
    assert tested.returncode == 0 and "word accuracy: " in tested.stderr
