"""The CTC head's readings (--decoder ctc and joint), the reading validation chooses, and models trained with
the CTC head alone (--decoder ctc)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from aocr.core import params as model_params
from aocr.core import savedmodel
from aocr.core.charset import EOS_ID, FIRST_CHAR_ID, PAD_ID
from aocr.core.params import Decoding
from aocr.core.session import BEST_SCORE_FILE, best_dir
from aocr.export.tflite import read_tflite
from aocr.inference.recognizer import Recognizer, Result
from aocr.model.ctc import beam_decode, greedy_decode, sequence_log_likelihood
from tests.conftest import TINY_SHAPE, run_aocr

A, B = FIRST_CHAR_ID, FIRST_CHAR_ID + 1
CLASSES = FIRST_CHAR_ID + 2


def logits_of(columns: list[dict[int, float]]) -> tf.Tensor:
    """float32 [1, T, CLASSES] logits whose softmax gives each column the probabilities listed (GO and EOS ~0)."""
    rows = []
    for probabilities in columns:
        row = np.full(CLASSES, -40.0, np.float32)
        for class_id, probability in probabilities.items():
            row[class_id] = math.log(probability)
        rows.append(row)
    return tf.constant(np.array(rows)[None])


def sure(class_id: int, probability: float = 0.9) -> dict[int, float]:
    other = A if class_id != A else B
    return {class_id: probability, other: 1.0 - probability}


def test_best_path_merges_repeats_drops_gaps_and_ignores_padding_columns():
    logits = logits_of([sure(A), sure(A, 0.7), sure(PAD_ID, 0.6), sure(A), sure(B), sure(B), sure(PAD_ID), sure(B)])
    ids, probabilities, weights = (t.numpy() for t in greedy_decode(logits, tf.constant([7]), steps=5))
    assert ids.tolist() == [[A, A, B, EOS_ID, EOS_ID]]
    np.testing.assert_allclose(probabilities[0], [0.9, 0.9, 0.9, 0.6, 1.0], rtol=1e-5)  # EOS: the least sure gap
    expected = np.zeros((5, 8), np.float32)
    expected[0, :2], expected[1, 3], expected[2, 4:6] = 0.5, 1.0, 0.5  # column 7 is padding: no character
    np.testing.assert_allclose(weights[0], expected, atol=1e-6)


def test_best_path_cuts_a_text_longer_than_the_model_answers():
    logits = logits_of([sure(A), sure(PAD_ID), sure(B), sure(PAD_ID), sure(A)])
    ids, _, weights = (t.numpy() for t in greedy_decode(logits, tf.constant([5]), steps=3))
    assert ids.tolist() == [[A, B, EOS_ID]]
    assert weights[0, :, 4].sum() == 0  # the character cut off is nowhere in the map


def test_beam_search_and_the_likelihood_sum_over_alignments_where_the_best_path_does_not():
    # Two columns, each blank 0.6 and A 0.4: the best path reads nothing (0.36), yet A has three
    # alignments (AA, A-, -A) worth 0.64 together.
    logits = logits_of([{PAD_ID: 0.6, A: 0.4}, {PAD_ID: 0.6, A: 0.4}])
    columns = tf.constant([2])
    greedy_ids, _, _ = greedy_decode(logits, columns, steps=3)
    assert greedy_ids.numpy().tolist() == [[EOS_ID] * 3]
    ids, log_probabilities = beam_decode(logits, columns, steps=3, beam_width=4, top_paths=2)
    assert ids.numpy().tolist() == [[[A, EOS_ID, EOS_ID], [EOS_ID] * 3]]
    np.testing.assert_allclose(np.exp(log_probabilities.numpy()), [[0.64, 0.36]], rtol=1e-3)
    likelihood = sequence_log_likelihood(logits, columns, ids)
    np.testing.assert_allclose(np.exp(likelihood.numpy()), [[0.64, 0.36]], rtol=1e-3)


def read_all(model_dir, decoding: Decoding, images: list[bytes]) -> list[Result]:
    recognizer = Recognizer.from_model_dir(str(model_dir), {}, decoding=decoding)
    try:
        return recognizer.recognize(images, 64)
    finally:
        recognizer.close()


def test_every_reading_of_a_trained_model_reads_its_images(trained_model, digits_set):
    images = [path.read_bytes() for path in digits_set.images[:60]]
    labels = digits_set.labels[:60]
    readings = {decoder: read_all(trained_model, Decoding(decoder=decoder), images)
                for decoder in ("attention", "ctc", "joint")}
    for decoder, results in readings.items():
        right = sum(result.text == label for result, label in zip(results, labels, strict=True))
        assert right >= 0.8 * len(labels), (decoder, right)
    for result in readings["ctc"]:
        for row in result.attention[:len(result.text)]:  # each character: evenly over the columns it was read from
            assert row.sum() == pytest.approx(1.0) and np.ptp(row[row > 0]) < 1e-6
    soft = [row for result in readings["attention"] for row in result.attention[:len(result.text)]]
    assert any(np.ptp(row[row > 0]) > 1e-3 for row in soft)  # the attention decoder's maps are not the CTC's


def test_ctc_beam_search_answers_distinct_candidates_best_first(trained_model, digits_set):
    images = [path.read_bytes() for path in digits_set.images[:20]]
    results = read_all(trained_model, Decoding(beam_width=4, n_best=3, decoder="ctc"), images)
    for result in results:
        texts = [candidate.text for candidate in result.candidates if candidate.probability > 0]
        probabilities = [candidate.probability for candidate in result.candidates]
        assert len(set(texts)) == len(texts) and probabilities == sorted(probabilities, reverse=True)
        assert all(len(candidate.text) <= 4 for candidate in result.candidates)  # --max-prediction 4
        assert 0 < probabilities[0] <= 1 and result.text == texts[0]
        # characters and end share the text's probability evenly
        share = probabilities[0] ** (1 / (len(texts[0]) + 1))
        assert result.char_probabilities == pytest.approx([share] * len(texts[0]), rel=1e-4)


def test_training_records_the_reading_that_validated_best_and_test_uses_it(trained_model, digits_set, aocr_main):
    chosen = json.loads(Path(best_dir(str(trained_model)), BEST_SCORE_FILE).read_text())["decoder"]
    assert chosen in ("attention", "ctc")
    tested = aocr_main("test", str(digits_set.tfrecords), "--model-dir", str(trained_model))
    assert tested.returncode == 0, tested.stderr
    assert f"reading with the {chosen} decoder (it scored best in validation)" in tested.stderr


@pytest.fixture(scope="module")
def ctc_model(digits_set, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("ctc") / "model"
    trained = run_aocr("train", str(digits_set.tfrecords), "--model-dir", str(model_dir), *TINY_SHAPE,
                       "--decoder", "ctc", "--max-steps", "20", "--steps-per-checkpoint", "10", "--batch-size", "16")
    assert trained.returncode == 0, trained.stderr
    return model_dir


def test_a_ctc_model_has_no_attention_decoder_and_refuses_to_read_with_one(ctc_model, digits_set, aocr_main):
    assert model_params.require(str(ctc_model)).decoder == "ctc"
    names = [name for name, _ in tf.train.list_variables(str(ctc_model))]
    assert any(name.startswith("ctc/") for name in names) and not any(name.startswith("decoder/") for name in names)
    for decoder in ("attention", "joint"):
        refused = aocr_main("test", str(digits_set.tfrecords), "--model-dir", str(ctc_model), "--decoder", decoder)
        assert refused.returncode != 0 and "has only its CTC head" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_an_export_stores_its_reading(ctc_model, trained_model, tmp_path, aocr_main):
    for model_dir, flags, decoder in [(ctc_model, [], "ctc"), (trained_model, ["--decoder", "joint"], "joint")]:
        export_dir = tmp_path / decoder
        exported = aocr_main("export", str(export_dir), "--model-dir", str(model_dir), *flags)
        assert exported.returncode == 0, exported.stderr
        loaded = savedmodel.load(savedmodel.version_path(str(export_dir), savedmodel.versions(str(export_dir))[-1]))
        try:
            assert loaded.decoder == decoder
        finally:
            loaded.close()


def test_a_ctc_model_exported_to_tflite_reads_as_predict_does(ctc_model, digits_set, tmp_path, aocr_main):
    exported = aocr_main("export", str(tmp_path / "lite"), "--format", "tflite", "--model-dir", str(ctc_model))
    assert exported.returncode == 0, exported.stderr
    images = [path.read_bytes() for path in digits_set.images[:8]]
    answers = read_tflite(str(tmp_path / "lite" / "model.tflite"), images,
                          model_params.require(str(tmp_path / "lite")))
    recognizer = Recognizer.from_model_dir(str(ctc_model), {})
    try:
        expected = recognizer.recognize(images, 8)
    finally:
        recognizer.close()
    assert [text for text, _ in answers] == [result.text for result in expected]
    assert all(abs(probability - result.probability) < 1e-3
               for (_, probability), result in zip(answers, expected, strict=True))
