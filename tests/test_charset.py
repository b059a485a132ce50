"""Charset: any script in, the same text out, through Python and through the exported graph's id -> text table."""

import numpy as np
import pytest
import tensorflow as tf

from aocr.core.charset import EOS_ID, FIRST_CHAR_ID, GO_ID, PAD_ID, Charset, charset_from_text, find_bad_char

SCRIPTS = {
    "cyrillic": "Съешь же ещё этих булок",
    "greek": "Καλημέρα κόσμε, ψυχή",
    "hangul": "다람쥐 헌 쳇바퀴에 타고파",
    "cjk": "漢字と仮名の混じった文",
    "arabic": "مرحبا بالعالم",
    "accented latin": "Ça a été déjà vu, Øresund",
    "punctuation": "¡Hola! ¿Qué? «Sí» — 3½ … “ok”",
}


@pytest.mark.parametrize("text", SCRIPTS.values(), ids=SCRIPTS.keys())
@pytest.mark.parametrize("force_uppercase", [True, False])
def test_any_script_round_trips(text, force_uppercase):
    charset = Charset("".join(sorted(set(text.upper() if force_uppercase else text))), force_uppercase)
    expected = charset.normalize(text)
    ids = charset.encode(text)
    assert min(ids) >= FIRST_CHAR_ID and len(ids) == len(expected)
    assert charset.decode([*ids, EOS_ID, 5, 6]) == expected
    assert not charset.unknown_chars(text)


def test_labels_are_nfc_normalized_before_the_case_rule_applies():
    decomposed = "e\u0301te\u0301"  # 'été' spelled with combining accents
    charset = Charset("ÉT")
    assert charset.normalize(decomposed) == "ÉTÉ"
    assert charset.encode(decomposed) == charset.encode("\u00e9t\u00e9") == [3, 4, 3]
    assert Charset("жук", force_uppercase=False).normalize("жук") == "жук"
    assert Charset("ЖУК").normalize("жук") == "ЖУК"


def test_id_layout_keeps_pad_go_eos_first():
    charset = Charset("АБВ")
    assert (PAD_ID, GO_ID, EOS_ID, FIRST_CHAR_ID) == (0, 1, 2, 3)
    assert charset.num_classes == 6 and charset.id_table() == ["", "", "", "А", "Б", "В"]
    assert charset.decode([GO_ID, 3, PAD_ID, 5, EOS_ID, 4]) == "АВ"


def test_graph_id_table_decodes_multibyte_text():
    """The inference graph's decoding, as aocr.inference.graph.recognize_bytes does it: gather each id's UTF-8
    string from params.char_table.id_table(), blank the steps after the first EOS, join per row."""
    charset = Charset("".join(sorted(set("ПРИВЕТ МИР 안녕 漢字"))))
    rows = ["ПРИВЕТ МИР", "안녕", "漢字"]
    steps = 12
    ids = np.full((len(rows), steps), EOS_ID, np.int32)
    for row, text in enumerate(rows):
        ids[row, :len(text)] = charset.encode(text)
        ids[row, len(text) + 1:] = charset.encode("И")[0]  # garbage after the EOS
    graph = tf.Graph()
    with graph.as_default():
        ids_t = tf.constant(ids)
        after_eos = tf.cumsum(tf.cast(tf.equal(ids_t, EOS_ID), tf.int32), axis=1, exclusive=True) > 0
        chars = tf.gather(tf.constant(charset.id_table()), ids_t)
        text = tf.strings.reduce_join(tf.where(after_eos, tf.zeros_like(chars), chars), axis=1)
        with tf.compat.v1.Session(graph=graph) as session:
            out = session.run(text)
    assert [t.decode("utf-8") for t in out] == rows
    assert len(out[0]) == len(rows[0].encode("utf-8")) > len(rows[0])  # two bytes per Cyrillic letter


def test_charset_file_one_character_per_line():
    chars, rule = charset_from_text("б\r\nа\n \n\ne\u0301\nа\n", "c.txt")
    assert chars == "ба é" and "one character per line" in rule  # file order, space kept, NFC, repeats dropped


def test_charset_file_of_any_text_takes_its_distinct_characters():
    chars, rule = charset_from_text("Добрый день\nab\tba\n", "c.txt")
    assert chars == "".join(sorted(set("Добрый деньab"))) and "distinct characters" in rule


@pytest.mark.parametrize("text", ["", "\n\n", "  \r\n\t\n"])
def test_empty_charset_file_is_an_error_naming_it(text):
    with pytest.raises(ValueError, match="c.txt: empty charset file"):
        charset_from_text(text, "c.txt")


def test_control_character_line_in_a_charset_file_is_an_error():
    with pytest.raises(ValueError, match=r"c.txt, line 2: a control character \(U\+0007\)"):
        charset_from_text("a\n\x07\nb\n", "c.txt")


def test_bad_characters_are_found_and_named():
    assert find_bad_char("a b-ё") is None
    assert find_bad_char("ab\x00") == (3, "a NUL (U+0000)")
    assert find_bad_char("\ufeffab") == (1, "a byte-order mark (U+FEFF)")
    assert find_bad_char("a\tb") == (2, "a control character (U+0009)")
    assert find_bad_char("a\u2028") == (2, "a line or paragraph separator (U+2028)")


def test_unreachable_characters_are_those_the_case_rule_removes():
    assert Charset("ABCabcß").unreachable_chars() == "abcß"
    assert Charset("ABCabc", force_uppercase=False).unreachable_chars() == ""
