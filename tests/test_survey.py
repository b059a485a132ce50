"""resolve_from_data: a new model's charset and limits from real TFRecords (local and ram://)."""

import functools
import io
import math
import time

import pytest
import tensorflow as tf
from PIL import Image

from aocr.core.errors import AocrError
from aocr.core.params import ModelParams
from aocr.data.survey import RATIO_PERCENTILE, charset_from_flag, resolve_flags, resolve_from_data, survey_records
from aocr.data.writer import make_example
from tests.aocr_log import capture_aocr_log

aocr_log = pytest.fixture(name="aocr_log")(capture_aocr_log)


@functools.cache
def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, "PNG")
    return buffer.getvalue()


def write_records(path: str, rows: list[tuple[str, tuple[int, int]]]) -> str:
    with tf.io.TFRecordWriter(path) as writer:
        for label, size in rows:
            writer.write(make_example(png(*size), label).SerializeToString())
    return path


LABELS = ["Привет мир", "Καλημέρα", "e\u0301te\u0301 42", "ok"]


@pytest.fixture
def records(tmp_path):
    """200 images 30 high and 60-259 wide, and one 3000 wide: the one odd image the percentile ignores."""
    rows = [(LABELS[n % 4], (60 + n, 30)) for n in range(200)] + [("x", (3000, 30))]
    return write_records(str(tmp_path / "d.tfrecords"), rows)


def test_absent_fields_come_from_the_data(records, aocr_log):
    resolved = resolve_from_data({"attn_num_hidden": 64}, [records])

    labels = LABELS + ["x"]  # an auto charset keeps the labels' case
    expected_chars = "".join(sorted(set("".join(labels).replace("e\u0301", "\u00e9"))))
    assert resolved["charset"] == expected_chars and " " in expected_chars and "é" in expected_chars
    assert resolved["force_uppercase"] is False
    assert resolved["max_prediction"] == len("ПРИВЕТ МИР")
    assert resolved["max_height"] == 30
    ratio_p99 = 258 / 30  # the 199th of 201 ratios, by the 'higher' rule: the 3000-wide image is left out
    assert resolved["max_width"] == math.ceil(ratio_p99 * 30)
    params = ModelParams(**resolved)
    assert params.image_width == 4 * math.ceil(math.ceil(resolved["max_width"] / 30 * 32) / 4)
    assert params.attn_num_hidden == 64
    assert f"{RATIO_PERCENTILE}th-percentile" in aocr_log.text
    assert "--max-width 3000 --max-height 30 keeps every image unsqueezed" in aocr_log.text
    assert "from the data (auto): --charset" in aocr_log.text


def test_auto_strings_mean_the_same_and_case_can_be_kept(records):
    resolved = resolve_from_data({"charset": "auto", "max_width": "auto", "max_height": 60,
                                  "max_prediction": "auto", "force_uppercase": False}, [records])
    assert "р" in resolved["charset"] and "Р" not in resolved["charset"]  # Cyrillic er, lower case kept
    assert resolved["max_height"] == 60 and resolved["max_width"] == math.ceil(258 / 30 * 60)


def test_explicit_values_are_kept(records):
    explicit = {"charset": "0123456789", "max_width": 400, "max_height": 40, "max_prediction": 12}
    # a charset without lower case upper-cases the labels
    assert resolve_from_data(explicit, [records]) == {**explicit, "force_uppercase": True, "decoder": "ctc"}


def test_fixed_charset_longest_label_counts_only_labels_it_can_learn(records):
    resolved = resolve_from_data({"charset": "OK"}, [records])
    assert resolved["charset"] == "OK" and resolved["max_prediction"] == 2


def test_charset_file_is_read_and_its_rule_logged(records, tmp_path, aocr_log):
    one_per_line = tmp_path / "chars.txt"
    one_per_line.write_text("Ж\nЯ\n \n", encoding="utf-8")
    assert resolve_from_data({"charset": str(one_per_line)}, [records])["charset"] == "ЖЯ "
    assert "one character per line" in aocr_log.text
    text = tmp_path / "text.txt"
    text.write_text("ЯЖ ЖЯ\n", encoding="utf-8")
    assert resolve_from_data({"charset": str(text)}, [records])["charset"] == " ЖЯ"
    assert "distinct characters" in aocr_log.text


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xff\xfeA\x00", "dir"])
def test_bad_charset_file_is_an_error_naming_it(tmp_path, content):
    path = tmp_path / "chars.txt"
    if content == "dir":
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(AocrError, match="chars.txt"):
        charset_from_flag(str(path))


def test_literal_charset_is_nfc_and_a_mistyped_file_name_says_so():
    assert charset_from_flag("e\u0301ab")[0] == "\u00e9ab"
    with pytest.raises(AocrError, match="no file.*repeats"):
        charset_from_flag("my_charset.txt")
    with pytest.raises(AocrError, match="NUL"):
        charset_from_flag("ab\x00")


def test_labels_with_control_characters_stay_out_of_the_charset(tmp_path, aocr_log):
    path = write_records(str(tmp_path / "d.tfrecords"), [("AB", (40, 20)), ("C\x00D", (40, 20)),
                                                         ("\ufeffEF", (40, 20)), ("G\tH", (40, 20))])
    resolved = resolve_from_data({}, [path])
    assert resolved["charset"] == "AB" and resolved["max_prediction"] == 2
    assert "3 labels hold a control character" in aocr_log.text


def test_resolve_flags_for_a_stored_model_reads_the_file_and_drops_auto(tmp_path):
    path = tmp_path / "chars.txt"
    path.write_text("Ж\nЯ\n", encoding="utf-8")
    assert resolve_flags({"charset": str(path), "max_width": "auto", "max_height": 32}) == {
        "charset": "ЖЯ", "max_height": 32}


def test_ram_filesystem_records_and_charset_file():
    root = "ram://aocr-survey"
    tf.io.gfile.makedirs(root)
    path = write_records(f"{root}/d.tfrecords", [("ΑΒΓ", (90, 30)), ("ΔΕ", (60, 30))])
    with tf.io.gfile.GFile(f"{root}/chars.txt", "w") as f:
        f.write("Α\nΒ\nΓ\nΔ\nΕ\n")
    assert resolve_from_data({}, [path])["charset"] == "ΑΒΓΔΕ"
    assert resolve_from_data({"charset": f"{root}/chars.txt"}, [path])["max_width"] == 90


def test_size_sample_is_bounded_and_spread_over_every_file(tmp_path):
    # File f holds images of height 10 + f, so the sample's heights say which files it reached.
    files = [write_records(str(tmp_path / f"{f}.tfrecords"), [("A", (50, 10 + f))] * 100) for f in range(3)]
    survey = survey_records(files, sample=16)
    assert survey.records == 300 and len(survey.sizes) <= 16 and survey.stride > 1
    assert set(survey.sizes[:, 1].tolist()) == {10, 11, 12}
    assert survey.chars == {"A": 300}


def test_ten_thousand_records_take_seconds(tmp_path):
    rows = [(f"LINE {n}", (40 + n % 300, 32)) for n in range(10000)]
    path = write_records(str(tmp_path / "d.tfrecords"), rows)
    started = time.monotonic()
    resolved = resolve_from_data({}, [path])
    assert time.monotonic() - started < 10
    assert resolved["max_prediction"] == len("LINE 9999") and resolved["charset"] == " 0123456789EILN"


def test_no_record_is_an_error(tmp_path):
    path = write_records(str(tmp_path / "d.tfrecords"), [])
    with pytest.raises(AocrError, match="no readable record"):
        resolve_from_data({}, [path])


def test_a_new_model_trains_the_ctc_head_alone_unless_told_otherwise(tmp_path):
    short = write_records(str(tmp_path / "short.tfrecords"), [("word", (60, 30))] * 4)
    long = write_records(str(tmp_path / "long.tfrecords"), [("a line of text " * 3, (600, 30))] * 4)
    assert resolve_from_data({}, [short])["decoder"] == "ctc"
    assert resolve_from_data({}, [long])["decoder"] == "ctc"
    assert resolve_from_data({"decoder": "auto"}, [short])["decoder"] == "ctc"
    assert resolve_from_data({"decoder": "attention"}, [short])["decoder"] == "attention"
    for flags in ({"attn_num_layers": 3}, {"use_gru": True}, {"target_embedding_size": 20}):  # the original aocr's
        assert resolve_from_data(flags, [short])["decoder"] == "attention"
    assert resolve_from_data({"attn_num_layers": 3, "decoder": "ctc"}, [short])["decoder"] == "ctc"
