"""`aocr dataset`: annotation files with every kind of bad line -> exactly the good records."""

import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from PIL import Image

from aocr.cli import build_parser
from aocr.cli import dataset as writer
from aocr.data.records import iter_records
from aocr.data.writer import LabelRules, write_dataset
from tests.aocr_log import capture_aocr_log
from tests.conftest import render_images, run_aocr

aocr_log = pytest.fixture(name="aocr_log")(capture_aocr_log)


def read_back(path):
    return list(iter_records([str(path)]))


def test_mixed_good_and_bad_lines_write_exactly_the_good_ones(tmp_path, aocr_main):
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

    result = aocr_main("dataset", str(annotations), str(output))

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
    assert [r.label for r in records] == ["hello big world", "", "TAB"]
    assert records[0].comment == "imgs/0000.png" and records[0].image == image.read_bytes()
    assert "' ' 2" in result.stderr  # the space is counted among the characters seen
    assert "outside the charset" not in result.stderr  # no charset given: a new model takes the labels' own


def test_labels_keep_their_case_unless_upper_casing_is_asked_for_and_comment_is_optional(tmp_path):
    [image] = render_images(tmp_path / "imgs", ["ab"])
    for flags, label in [((), "MiXed"), (("--no-force-uppercase",), "MiXed"), (("--force-uppercase",), "MIXED"),
                         (("--charset", "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"), "MIXED")]:
        [record] = dataset_in_process(tmp_path, [f"{image} MiXed"], *flags)
        assert (record.label, record.comment) == (label, None), flags


def test_default_output_name(tmp_path):
    render_images(tmp_path / "imgs", ["AB"])
    (tmp_path / "a.txt").write_text("imgs/0000.png AB\n")
    assert run_aocr("dataset", "a.txt", cwd=tmp_path).returncode == 0
    assert len(read_back(tmp_path / "dataset.tfrecords")) == 1


def test_missing_annotation_file_is_one_line_error(tmp_path, aocr_main):
    result = aocr_main("dataset", str(tmp_path / "nowhere.txt"), str(tmp_path / "out.tfrecords"))
    assert result.returncode != 0
    assert "nowhere.txt" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.tfrecords").exists()


def test_no_good_line_fails_and_writes_nothing(tmp_path, aocr_main):
    (tmp_path / "a.txt").write_text("missing.png ABC\n\n")
    result = aocr_main("dataset", str(tmp_path / "a.txt"), str(tmp_path / "out.tfrecords"))
    assert result.returncode != 0
    assert "missing.png" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.tfrecords").exists()
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_interrupted_run_keeps_the_previous_output(tmp_path):
    image = render_images(tmp_path / "imgs", ["AB"])[0]
    (tmp_path / "a.txt").write_text(f"{image} AB\n" * 50000)
    output = tmp_path / "out.tfrecords"
    with tf.io.TFRecordWriter(str(output)) as previous:
        previous.write(b"previous good dataset")
    previous_bytes = output.read_bytes()
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
    assert output.read_bytes() == previous_bytes
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


def blank_image(tmp_path, width=60, height=20):
    path = tmp_path / f"blank-{width}x{height}.png"
    Image.new("L", (width, height), 255).save(path)
    return path


def dataset_in_process(tmp_path, lines, *flags):
    """`aocr dataset` through its own run(), in this process; returns the records written."""
    annotations = tmp_path / "a.txt"
    annotations.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    output = tmp_path / "out.tfrecords"
    args = build_parser().parse_args(["dataset", str(annotations), str(output), "--log-path", "", *flags])
    assert writer.run(args) == 0
    return read_back(output)


def test_control_characters_bom_and_nul_are_reported_by_line_and_skipped(tmp_path, aocr_log):
    image = blank_image(tmp_path)
    lines = [f"{image} GOOD", f"{image} NU\x00L", f"{image} B\ufeffOM", f"{image} BE\x07LL",
             f"{image} FORM\x0cFEED", f"\ufeff{image} START", f"{image} TA\tB", f"{image} END"]
    records = dataset_in_process(tmp_path, lines)
    assert [r.label for r in records] == ["GOOD", "END"]
    for expected in ("line 2: the label holds a NUL (U+0000) at character 3",
                     "line 3: the label holds a byte-order mark (U+FEFF) at character 2",
                     "line 4: the label holds a control character (U+0007) at character 3",
                     "line 5: the label holds a control character (U+000C) at character 5",  # not a line break
                     "line 6: the path holds a byte-order mark (U+FEFF) at character 1",
                     "line 7: the label holds a control character (U+0009) at character 3",
                     "2 written, 6 skipped"):
        assert expected in aocr_log.text


def test_only_the_first_few_lines_of_each_kind_are_named(tmp_path, aocr_log):
    image = blank_image(tmp_path)
    lines = [f"{image} OK"] + [f"{image} N\x00{n}" for n in range(25)] + [f"{tmp_path}/gone{n}.png A" for n in range(3)]
    dataset_in_process(tmp_path, lines)
    assert "line 11: the label holds a NUL" in aocr_log.text and "line 12:" not in aocr_log.text
    assert "25 lines in all with control characters (the first 10 above)" in aocr_log.text
    assert all(f"gone{n}.png" in aocr_log.text for n in range(3))
    assert "1 written, 28 skipped" in aocr_log.text


def test_labels_outside_an_explicit_charset_are_written_and_named_by_line(tmp_path, aocr_log):
    image = blank_image(tmp_path)
    records = dataset_in_process(tmp_path, [f"{image} ab", f"{image} abd", f"{image} été", f"{image} ba"],
                                 "--charset", "ABC")
    assert [r.label for r in records] == ["AB", "ABD", "ÉTÉ", "BA"]  # written as before: training skips them
    assert "line 2: 'D' outside the charset" in aocr_log.text and "line 3: 'TÉ' outside" in aocr_log.text
    assert "the charset lacks 3 of these characters: 'DTÉ' ('D' 1, 'T' 1, 'É' 2)" in aocr_log.text


def test_charset_file_names_its_rule_and_what_it_lacks(tmp_path, aocr_log):
    image = blank_image(tmp_path)
    (tmp_path / "chars.txt").write_text("Д\nА\n", encoding="utf-8")
    dataset_in_process(tmp_path, [f"{image} да", f"{image} Ж"], "--charset", str(tmp_path / "chars.txt"))
    assert "one character per line" in aocr_log.text and "the charset lacks 1 of these characters: 'Ж'" in aocr_log.text


def test_labels_longer_than_an_explicit_max_prediction_are_skipped_naming_the_flag(tmp_path, aocr_log):
    image = blank_image(tmp_path)
    (tmp_path / "a.txt").write_text(f"{image} ABC\n{image} ABCDEF\n{image} XY\n", encoding="utf-8")
    report = write_dataset([str(tmp_path / "a.txt")], str(tmp_path / "out.tfrecords"), LabelRules(max_prediction=3))
    assert (report.written, report.skipped, report.too_long) == (2, 1, 1)
    assert [r.label for r in read_back(tmp_path / "out.tfrecords")] == ["ABC", "XY"]
    assert "line 2: label of 6 characters is longer than --max-prediction 3; skipped" in aocr_log.text


def test_summary_counts_the_characters_and_says_what_train_will_take(tmp_path, aocr_log):
    narrow, wide = blank_image(tmp_path, 60, 20), blank_image(tmp_path, 200, 20)
    lines = [f"{narrow} Жук и ёж", f"{narrow} Ωμέγα", f"{wide} e\u0301te\u0301"]
    records = dataset_in_process(tmp_path, lines, "--force-uppercase")
    assert [r.label for r in records] == ["ЖУК И ЁЖ", "ΩΜΈΓΑ", "ÉTÉ"]  # NFC and upper case
    assert "labels hold 13 distinct characters, 16 in all: ' TÉΈΑΓΜΩЁЖИКУ'" in aocr_log.text
    assert "character counts: ' ' 2, 'T' 1, 'É' 2, 'Έ' 1, 'Α' 1," in aocr_log.text  # by code point
    assert "for a new model, `aocr train` with no shape flags takes --charset auto (13 characters); " \
           "--max-prediction 8 (the longest label, 'ЖУК И ЁЖ'); --max-width 200 --max-height 20" in aocr_log.text
