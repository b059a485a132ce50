"""Hostile and odd images: files that declare enormous images are named and skipped from their header,
before anything decodes them; 16-bit, CMYK, alpha and animated files are read; EXIF-turned ones are named."""

import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from aocr.core.images import BadImage, check_image_header, check_served_image, gif_frames, image_size, read_header
from aocr.core.params import ModelParams
from aocr.data.preprocess import preprocess_image
from aocr.data.records import scan_labels
from aocr.data.writer import make_example
from benchmarks.hostile_memory import run_measured
from tests.conftest import run_aocr
from tools import hostile_images

tf1 = tf.compat.v1
AOCR = [sys.executable, "-m", "aocr"]
BOMBS = {"png-30000x30000.png": (30000, 30000), "gif-30000x30000.gif": (30000, 30000),
         "jpeg-65000x65000.jpg": (65000, 65000)}
TINY = ["--max-width", "120", "--max-height", "32", "--max-prediction", "4", "--attn-num-hidden", "32",
        "--attn-num-layers", "1"]
# `aocr predict` with TensorFlow and a tiny model stays near 0.7 GiB; one decoded bomb costs 2.5 GiB or more.
PEAK_LIMIT_MIB = 1500


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every hostile and odd file, and a plain image, written once."""
    directory = tmp_path_factory.mktemp("hostile")
    written = {path.name: path for path in hostile_images.write_all(directory)}
    plain = directory / "plain.png"
    plain.write_bytes(hostile_images.encode(hostile_images.text_image(), "PNG"))
    return {**written, "plain.png": plain}


def test_files_are_small(files):
    assert all(path.stat().st_size < 1_000_000 for path in files.values())


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_a_bomb_is_refused_from_its_header_naming_its_size(files, name):
    width, height = BOMBS[name]
    problem = check_image_header(files[name].read_bytes(), 50_000_000)
    assert problem and f"{width}x{height}" in problem and "--max-image-pixels" in problem
    with pytest.raises(BadImage, match="--max-image-pixels"):
        image_size(files[name].read_bytes())


@pytest.mark.parametrize(("data", "why"), [
    (hostile_images.webp_lossless_header(), "Unknown image file format"),
    (b"not an image", "Unknown image file format"),
    (b"", "Input is empty"),
    (hostile_images.png_with_a_broken_chunk(), "its size cannot be read from its header"),
    (hostile_images.png_of_empty_chunks(5000), "over 1000 chunks before its image data"),
])
def test_a_server_decodes_nothing_whose_size_its_header_does_not_give(data, why):
    with pytest.raises(BadImage, match=why):
        check_served_image(data, 50_000_000)


def test_a_server_takes_a_plain_image_and_names_a_bomb(files):
    assert check_served_image(files["plain.png"].read_bytes(), 50_000_000).pixels == 120 * 32
    assert check_served_image(hostile_images.png_of_empty_chunks(10), 50_000_000).width == 8
    with pytest.raises(BadImage, match="30000x30000"):
        check_served_image(files["png-30000x30000.png"].read_bytes(), 50_000_000)


def test_the_limit_is_the_callers(files):
    data = files["plain.png"].read_bytes()
    assert check_image_header(data, 120 * 32) is None
    assert "over the limit" in check_image_header(data, 120 * 32 - 1)


def test_every_frame_of_a_gif_counts(files):
    data = files["animated-10000-frames.gif"].read_bytes()
    assert gif_frames(data) == (10000, 10000 * 120 * 32)
    assert read_header(data).pixels == 10000 * 120 * 32
    assert check_image_header(data, 50_000_000) is None
    assert "in 10000 frames" in check_image_header(data, 30_000_000)


@pytest.mark.parametrize("data", [b"", b"GIF89a", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"plain text"])
def test_truncated_headers_are_reasons_not_crashes(data):
    assert check_image_header(data, 50_000_000)


def test_an_exif_turned_jpeg_is_named_where_upright_is_asked(files):
    data = files["exif-rotated.jpg"].read_bytes()
    assert read_header(data).orientation == 6 and check_image_header(data) is None
    with pytest.raises(BadImage, match="EXIF orientation 6"):
        image_size(data, upright=True)


def preprocessed(data: bytes, channels: int) -> np.ndarray:
    with tf.Graph().as_default(), tf1.Session() as session:
        image, width = preprocess_image(tf.constant(data), ModelParams(channels=channels))
        pixels, width = session.run([image, width])
    return pixels[:, :width]


@pytest.mark.parametrize(("name", "tolerance"), [("gray-16bit.png", 1.0), ("alpha.png", 0.0), ("cmyk.jpg", 12.0)])
def test_odd_formats_read_like_the_plain_image(files, name, tolerance):
    for channels in (1, 3):
        plain = preprocessed(files["plain.png"].read_bytes(), channels)
        odd = preprocessed(files[name].read_bytes(), channels)
        assert odd.shape == plain.shape
        assert np.abs(odd - plain).mean() <= tolerance, (name, channels, np.abs(odd - plain).mean())


def test_the_first_frame_of_an_animated_gif_is_read(files):
    first = preprocessed(files["animated-10000-frames.gif"].read_bytes(), 1)
    assert first.shape[0] == 32 and first.size and first.max() == 0  # frame 0 is black, frame 1 white


@pytest.fixture(scope="module")
def records(files, tmp_path_factory):
    """TFRecords holding every file (bombs too, as a foreign writer might) and 8 plain images, labelled 42."""
    path = tmp_path_factory.mktemp("records") / "hostile.tfrecords"
    names = [*files, *(["plain.png"] * 7)]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for name in names:
            writer.write(make_example(files[name].read_bytes(), "42", name).SerializeToString())
    return path


def test_training_scan_skips_bombs_naming_them(records):
    scan = scan_labels([str(records)], ModelParams(max_width=120, max_height=32, max_prediction=4))
    assert scan.bad_images == 3 and scan.usable == len(scan.keep) - 3
    assert all(any(name in note for note in scan.examples["image"]) for name in BOMBS)


@pytest.fixture(scope="module")
def model(records, tmp_path_factory):
    """A tiny model trained two steps on the records with bombs: training skips them, naming them."""
    model_dir = tmp_path_factory.mktemp("model") / "m"
    result = run_aocr("train", str(records), "--model-dir", str(model_dir), *TINY, "--batch-size", "4",
                      "--max-steps", "2", "--validation-split", "0", "--log-path", "")
    assert result.returncode == 0, result.stderr
    assert "3 records skipped: image not to decode" in result.stderr
    assert all(name in result.stderr for name in BOMBS)
    return model_dir


def test_predict_names_and_skips_bombs_within_bounded_memory(files, model):
    paths = [str(path) for path in files.values()]
    result, peak = run_measured([*AOCR, "predict", *paths, "--model-dir", str(model), "--log-path", ""])
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    answered = {line.split("\t")[0] for line in result.stdout.splitlines()}
    skipped = set(re.findall(r"aocr predict: (\S+): .*; skipped", result.stderr))
    refused = {str(files[name]) for name in [*BOMBS, "exif-rotated.jpg"]}
    assert skipped == refused and answered == set(paths) - refused
    assert peak < PEAK_LIMIT_MIB, f"peak resident memory {peak:.0f} MiB"


def test_test_names_the_bomb_records_and_goes_on(records, model):
    result, peak = run_measured([*AOCR, "test", str(records), "--model-dir", str(model),
                                 "--log-path", ""])
    assert result.returncode == 0 and "word accuracy:" in result.stderr, result.stderr
    for name in BOMBS:
        assert re.search(rf"{re.escape(name)}: declares .*--max-image-pixels", result.stderr), result.stderr
    assert peak < PEAK_LIMIT_MIB


def test_dataset_names_and_skips_bombs_and_turned_images(files, tmp_path):
    annotations = tmp_path / "all.txt"
    annotations.write_text("".join(f"{path} 42\n" for path in files.values()))
    result, peak = run_measured([*AOCR, "dataset", str(annotations), str(tmp_path / "out.tfrecords"),
                                 "--log-path", ""])
    assert result.returncode == 0, result.stderr
    for name in [*BOMBS, "exif-rotated.jpg"]:
        assert f"{files[name]}: " in result.stderr and "skipped" in result.stderr
    assert f"{len(files) - 4} written, 4 skipped" in result.stderr
    assert peak < PEAK_LIMIT_MIB


def test_a_lower_limit_is_taken_from_the_flag(files, tmp_path):
    annotations = tmp_path / "gif.txt"
    annotations.write_text(f"{files['animated-10000-frames.gif']} 42\n{files['plain.png']} 42\n")
    result = run_aocr("dataset", str(annotations), str(tmp_path / "out.tfrecords"), "--max-image-pixels", "1000000",
                      "--log-path", "")
    assert result.returncode == 0 and "1 written, 1 skipped" in result.stderr, result.stderr
    assert "in 10000 frames" in result.stderr
