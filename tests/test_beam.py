"""Beam search, n-best candidates and per-character confidence (issue 17), on the tiny trained model."""

import json

import numpy as np
import pytest
import tensorflow as tf

from aocr.cli import main
from aocr.core import defaults, savedmodel
from aocr.core import params as model_params
from aocr.core.params import Decoding
from aocr.core.session import require_checkpoint
from aocr.data.preprocess import preprocess_batch
from aocr.export.export import export_savedmodel
from aocr.inference.evaluate import evaluate
from aocr.inference.metrics import Coverage
from aocr.inference.recognizer import Recognizer
from aocr.model.beam import beam_decode
from aocr.model.model import build_model, encode

tf1 = tf.compat.v1


@pytest.fixture(scope="module")
def params(trained_model):
    return model_params.require(str(trained_model))


@pytest.fixture(scope="module")
def images(digits_set):
    return [path.read_bytes() for path in digits_set.images[:40]]


def run_graph(trained_model, build, data):
    """Run build(image_bytes placeholder) -> fetches on data in a fresh graph with the model's latest checkpoint."""
    graph = tf.Graph()
    with graph.as_default():
        image_bytes = tf1.placeholder(tf.string, [None])
        fetches = build(image_bytes)
        saver = tf1.train.Saver()
    with tf1.Session(graph=graph) as session:
        saver.restore(session, require_checkpoint(str(trained_model)))
        return session.run(fetches, {image_bytes: data})


def answers(trained_model, params, decoding, data):
    recognizer = Recognizer.load(str(trained_model), params, decoding=decoding)
    try:
        return recognizer.run_batch(data)
    finally:
        recognizer.close()


def test_greedy_answers_are_the_model_paths_argmax_with_per_character_probabilities(trained_model, params, images):
    """Beam width 1 is greedy decoding as before: the infer model's most likely class at each step, the
    answer's probability the product of those through EOS, and each character's own probability."""
    def greedy(image_bytes):
        batch, widths = preprocess_batch(image_bytes, params)
        outputs = build_model(batch, widths, params, "infer")
        return outputs.ids, tf.nn.softmax(outputs.logits)

    ids, softmax = run_graph(trained_model, greedy, images)
    results = answers(trained_model, params, Decoding(beam_width=1), images)
    charset = params.char_table
    for row, probabilities, result in zip(ids, softmax, results, strict=True):
        text = charset.decode(list(row))
        assert result.text == text
        chosen = probabilities.max(axis=1)
        assert result.probability == pytest.approx(float(np.prod(chosen[:len(text) + 1])), rel=1e-5)
        assert result.char_probabilities == pytest.approx(list(chosen[:len(text)]), rel=1e-6)
        assert [c.text for c in result.candidates] == [text]


def test_beam_search_of_width_1_follows_the_greedy_path(trained_model, params, images):
    def beam_of_one(image_bytes):
        batch, widths = preprocess_batch(image_bytes, params)
        encoded, _, mask, _ = encode(batch, widths, params, training=False)
        return beam_decode(encoded, mask, params.char_table.num_classes, params.decoder_steps,
                           params.attn_num_hidden, params.attn_num_layers, params.target_embedding_size,
                           params.use_gru, beam_width=1).ids

    ids = run_graph(trained_model, beam_of_one, images)
    greedy = answers(trained_model, params, Decoding(), images)
    assert [params.char_table.decode(list(row[0])) for row in ids] == [result.text for result in greedy]


def test_beam_5_reads_the_test_set_at_least_as_well_as_greedy(trained_model, params, digits_set):
    accuracy = {}
    for width in (1, 5):
        recognizer = Recognizer.load(str(trained_model), params, decoding=Decoding(beam_width=width))
        try:
            accuracy[width] = evaluate(recognizer, str(digits_set.tfrecords), 64).word_accuracy
        finally:
            recognizer.close()
    assert accuracy[5] >= accuracy[1] > 0.8


def mean_log_probability(candidate, steps):
    """The beam's ranking: log-probability per decoder step, EOS included (a text of `steps` has none)."""
    return np.log(candidate.probability) / min(len(candidate.text) + 1, steps)


def test_n_best_candidates_are_distinct_and_ordered_best_first(trained_model, params, images):
    """In a batch, and for an image read alone, whose decoding stops before the last step."""
    recognizer = Recognizer.load(str(trained_model), params, decoding=Decoding(beam_width=5, n_best=3))
    try:
        results = recognizer.run_batch(images)
        alone = [recognizer.run_batch([image])[0] for image in images[:4]]
    finally:
        recognizer.close()
    assert [[c.text for c in r.candidates] for r in alone] == [[c.text for c in r.candidates] for r in results[:4]]
    for result in results + alone:
        texts = [c.text for c in result.candidates]
        scores = [mean_log_probability(c, params.decoder_steps) for c in result.candidates]
        assert len(texts) == 3 and len(set(texts)) == 3
        assert texts[0] == result.text and result.candidates[0].probability == result.probability
        assert all(a >= b - 1e-5 for a, b in zip(scores, scores[1:], strict=False)), scores
        assert all(len(c.char_probabilities) == len(c.text) for c in result.candidates)
        assert all(0.0 < p <= 1.0 for c in result.candidates for p in c.char_probabilities)


def test_predict_jsonl_prints_candidates_with_per_character_probabilities(trained_model, digits_set, aocr_main):
    paths = [str(p) for p in digits_set.images[:8]]
    flags = ["--model-dir", str(trained_model), "--format", "jsonl", "--beam-width", "5"]
    result = aocr_main("predict", *paths, *flags, "--n-best", "3")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == paths
    for line in lines:
        assert [c["char"] for c in line["characters"]] == list(line["text"])
        # The answer's probability includes EOS's, so it is at most the product of its characters'.
        assert line["probability"] <= np.prod([c["probability"] for c in line["characters"]]) + 1e-6
        assert len(line["candidates"]) == 3 and line["candidates"][0]["text"] == line["text"]
        assert all([c["char"] for c in cand["characters"]] == list(cand["text"]) for cand in line["candidates"])
    correct = sum(line["text"] == label for line, label in zip(lines, digits_set.labels, strict=False))
    assert correct >= 7


@pytest.mark.parametrize("command", [["predict", "a.png"], ["test", "d.tfrecords"], ["export"]])
def test_n_best_above_the_beam_width_is_a_usage_error(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--beam-width", "2", "--n-best", "3"])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--n-best 3" in error and "--beam-width 2" in error


def test_export_answers_n_best_and_stores_its_beam_width(trained_model, params, images, tmp_path):
    checkpoint = require_checkpoint(str(trained_model))
    decoding = Decoding(beam_width=3, n_best=2)
    path = export_savedmodel(checkpoint, params, str(tmp_path / "export"), None, False, decoding)
    loaded = savedmodel.load(path)
    try:
        n_best = loaded.signature_outputs(savedmodel.N_BEST_SIGNATURE)
        fetches = [n_best[savedmodel.TEXTS_KEY], n_best[savedmodel.PROBABILITIES_KEY],
                   n_best[savedmodel.CHAR_PROBABILITIES_KEY], loaded.output_names[savedmodel.TEXT_KEY]]
        texts, probabilities, characters, best = loaded.session.run(fetches, {loaded.input_name: images[:4]})
        scalar = loaded.session.run(fetches[0], {loaded.input_name: images[0]})
        assert loaded.beam_width == 3
    finally:
        loaded.close()
    assert (texts.shape, probabilities.shape, characters.shape) == ((4, 2), (4, 2), (4, 2, params.decoder_steps))
    assert scalar.shape == (2,) and probabilities.dtype == np.float64
    expected = answers(trained_model, params, decoding, images[:4])
    assert [[t.decode() for t in row] for row in texts] == [[c.text for c in r.candidates] for r in expected]
    assert list(best) == list(texts[:, 0])


def test_test_reports_the_coverage_of_each_probability_threshold(trained_model, params, digits_set, aocr_main):
    result = aocr_main("test", str(digits_set.tfrecords), "--model-dir", str(trained_model))
    assert result.returncode == 0, result.stderr
    coverage = Coverage()
    recognizer = Recognizer.load(str(trained_model), params)
    try:
        evaluate(recognizer, str(digits_set.tfrecords), defaults.BATCH_SIZE, coverage=coverage)
    finally:
        recognizer.close()
    assert coverage.images == len(digits_set.labels)
    for line in coverage.summary_lines():
        assert line in result.stderr
    assert coverage.share(0.5) >= coverage.share(0.9) >= coverage.share(0.99)


@pytest.fixture(scope="module")
def lexicon(digits_set, tmp_path_factory):
    """The labels of the first 100 images, one a line, plus a blank line and words the digits model cannot answer."""
    path = tmp_path_factory.mktemp("lexicon") / "words.txt"
    path.write_text("\n".join([*digits_set.labels[:100], "", "12A4", "123456"]) + "\n", encoding="utf-8")
    return path


def test_a_lexicon_confines_the_answers_to_its_words(trained_model, params, digits_set, lexicon, tmp_path):
    words = set(digits_set.labels[:100])
    outside = [path.read_bytes() for path, label in zip(digits_set.images[100:], digits_set.labels[100:], strict=True)
               if label not in words][:20]
    decoding = Decoding(lexicon=str(lexicon))
    assert all(result.text in words for result in answers(trained_model, params, decoding, outside))
    inside = answers(trained_model, params, decoding, [path.read_bytes() for path in digits_set.images[:40]])
    greedy = answers(trained_model, params, Decoding(), [path.read_bytes() for path in digits_set.images[:40]])
    right = [sum(r.text == label for r, label in zip(results, digits_set.labels, strict=False))
             for results in (inside, greedy)]
    assert right[0] >= right[1]
    exported = export_savedmodel(require_checkpoint(str(trained_model)), params, str(tmp_path / "export"), None,
                                 False, Decoding(beam_width=2, lexicon=str(lexicon)))
    loaded = savedmodel.load(exported)
    try:
        texts = loaded.session.run(loaded.output_names[savedmodel.TEXT_KEY], {loaded.input_name: outside})
    finally:
        loaded.close()
    assert all(text.decode() in words for text in texts)


def test_lexicon_words_the_model_cannot_answer_are_named_and_an_empty_lexicon_is_refused(trained_model, digits_set,
                                                                                         lexicon, tmp_path, aocr_main):
    image = str(digits_set.images[0])
    result = aocr_main("predict", image, "--model-dir", str(trained_model), "--lexicon", str(lexicon))
    assert result.returncode == 0, result.stderr
    assert "2 words skipped" in result.stderr and "'12A4'" in result.stderr and "'123456'" in result.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    refused = aocr_main("predict", image, "--model-dir", str(trained_model), "--lexicon", str(empty))
    assert refused.returncode == 1 and refused.stdout == ""
    assert "empty.txt" in refused.stderr and "no word" in refused.stderr and "Traceback" not in refused.stderr


def test_answers_forced_onto_a_lexicon_word_are_flagged(trained_model, params, digits_set, lexicon, aocr_main):
    words = set(digits_set.labels[:100])
    outside = [path for path, label in zip(digits_set.images[100:], digits_set.labels[100:], strict=True)
               if label not in words][:20]
    decoding = Decoding(lexicon=str(lexicon))
    forced = answers(trained_model, params, decoding, [path.read_bytes() for path in outside])
    greedy = answers(trained_model, params, Decoding(), [path.read_bytes() for path in outside])
    assert [result.unconstrained.text for result in forced] == [result.text for result in greedy]
    assert sum(result.outside_lexicon for result in forced) >= 15
    inside = answers(trained_model, params, decoding, [path.read_bytes() for path in digits_set.images[:40]])
    assert sum(result.outside_lexicon for result in inside) <= 2
    printed = aocr_main("predict", *map(str, outside[:3]), "--model-dir", str(trained_model), "--lexicon", str(lexicon),
                        "--format", "jsonl")
    lines = [json.loads(line) for line in printed.stdout.splitlines()]
    assert [line["outside_lexicon"] for line in lines] == [result.outside_lexicon for result in forced[:3]]
    assert [line["unconstrained"]["text"] for line in lines] == [result.text for result in greedy[:3]]
