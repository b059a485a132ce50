"""`aocr dataset`: annotation files with every kind of bad line -> exactly the good records."""

import os
import signal
import subprocess
import sys
import time

import tensorflow as tf

from aocr.data.records import iter_records
from tests.conftest import render_images, run_aocr


def read_back(path):
    return list(iter_records([str(path)]))


def test_mixed_good_and_bad_lines_write_exactly_the_good_ones(tmp_path):
    good = render_images(tmp_path / "good", [f"A{n}" for n in range(40)])
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good[0].read_bytes()[:60])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is not an image")
    lines = [f"{p} A{n}" for n, p in enumerate(good)]
    bad = [f"{tmp_path / 'missing.png'} X", f"{truncated} T", f"{empty} E", f"{not_image} N", "lonely-path.png", ""]
    for position, line in zip((3, 9, 15, 21, 27, 33), bad, strict=True):
        lines.insert(position, line)
    annotations = tmp_path / "annotations.txt"
    annotations.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    output = tmp_path / "out.tfrecords"

    result = run_aocr("dataset", str(annotations), str(output), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    records = read_back(output)
    assert [r.label for r in records] == [f"A{n}" for n in range(40)]
    assert [r.image for r in records] == [p.read_bytes() for p in good]
    for name in ("missing.png", "truncated.png", "empty.png", "notes.png", "lonely-path.png"):
        assert name in result.stderr, f"{name} not reported"
    assert "40 written, 5 skipped" in result.stderr
    assert "Traceback" not in result.stderr


def test_relative_paths_spaces_and_empty_labels(tmp_path):
    image = render_images(tmp_path / "imgs", ["AB"])[0]
    annotations = tmp_path / "a.txt"
    annotations.write_text("imgs/0000.png hello big world\nimgs/0000.png \n\timgs/0000.png\tTAB\n")
    result = run_aocr("dataset", str(annotations), "out.tfrecords", "--save-filename", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = read_back(tmp_path / "out.tfrecords")
    assert [r.label for r in records] == ["HELLO BIG WORLD", "", "TAB"]
    assert records[0].comment == "imgs/0000.png" and records[0].image == image.read_bytes()
    assert "' '" in result.stderr and "--full-ascii" in result.stderr  # the space is outside the charset


def test_no_force_uppercase_keeps_case_and_comment_is_optional(tmp_path):
    render_images(tmp_path / "imgs", ["ab"])
    (tmp_path / "a.txt").write_text("imgs/0000.png MiXed\n")
    assert run_aocr("dataset", "a.txt", "out.tfrecords", "--no-force-uppercase", cwd=tmp_path).returncode == 0
    [record] = read_back(tmp_path / "out.tfrecords")
    assert record.label == "MiXed" and record.comment is None


def test_default_output_name(tmp_path):
    render_images(tmp_path / "imgs", ["AB"])
    (tmp_path / "a.txt").write_text("imgs/0000.png AB\n")
    assert run_aocr("dataset", "a.txt", cwd=tmp_path).returncode == 0
    assert len(read_back(tmp_path / "dataset.tfrecords")) == 1


def test_missing_annotation_file_is_one_line_error(tmp_path):
    result = run_aocr("dataset", "nowhere.txt", "out.tfrecords", cwd=tmp_path)
    assert result.returncode != 0
    assert "nowhere.txt" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.tfrecords").exists()


def test_no_good_line_fails_and_writes_nothing(tmp_path):
    (tmp_path / "a.txt").write_text("missing.png ABC\n\n")
    result = run_aocr("dataset", "a.txt", "out.tfrecords", cwd=tmp_path)
    assert result.returncode != 0
    assert "missing.png" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.tfrecords").exists()
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_interrupted_run_keeps_the_previous_output(tmp_path):
    image = render_images(tmp_path / "imgs", ["AB"])[0]
    (tmp_path / "a.txt").write_text(f"{image} AB\n" * 50000)
    output = tmp_path / "out.tfrecords"
    output.write_bytes(b"previous good dataset")
    process = subprocess.Popen([sys.executable, "-m", "aocr", "dataset", "a.txt", str(output)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not [p for p in os.listdir(tmp_path) if ".tmp-" in p] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the dataset job ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert output.read_bytes() == b"previous good dataset"
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_records_of_the_original_aocr_load(tmp_path):
    image = render_images(tmp_path / "imgs", ["AB"])[0].read_bytes()
    path = str(tmp_path / "original.tfrecords")
    with tf.io.TFRecordWriter(path) as writer:
        for label in (b"AB", b"CD"):
            feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
                       "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[label]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    records = read_back(path)
    assert [(r.label, r.comment) for r in records] == [("AB", None), ("CD", None)]
