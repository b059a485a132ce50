"""`aocr test`'s library (its flags: aocr.cli.test): a trained model on TFRecords -> word and character accuracy
(and, with --visualize, attention maps and an HTML report)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aocr.core.errors import AocrError
from aocr.core.progress import Progress
from aocr.data.records import Record, expand_dataset_paths, iter_records
from aocr.inference.metrics import Accuracy, Coverage
from aocr.inference.predict import CHUNK_BATCHES
from aocr.inference.recognizer import Recognizer, Result, Unreadable, chunks
from aocr.inference.visualize import AttentionWriter

log = logging.getLogger("aocr")


def evaluate(recognizer: Recognizer, dataset: str, batch_size: int, headline_full_match: bool = False,
             on_result: Callable[[Record, str, Result], None] | None = None,
             coverage: Coverage | None = None) -> Accuracy:
    """Recognize every record of `dataset` and score it against its (normalized) label.

    on_result, when given, receives each record with its normalized label and its Result;
    coverage, when given, counts each answer's probability and whether it was right.
    """
    params = recognizer.params
    charset = params.char_table
    accuracy = Accuracy()
    unlearnable = 0
    progress = Progress("test", log_every=batch_size * CHUNK_BATCHES * 10)
    try:
        for chunk in chunks(iter_records(expand_dataset_paths(dataset)), batch_size * CHUNK_BATCHES):
            results = recognizer.recognize([r.image for r in chunk], batch_size)
            for record, result in zip(chunk, results, strict=True):
                label = charset.normalize(record.label)
                if charset.unknown_chars(label) or len(label) > params.max_prediction:
                    unlearnable += 1
                name = record.comment or f"{record.source}#{record.position}"
                if isinstance(result, Unreadable):
                    log.warning("%s: %s; counted as wrong", name, result.reason)
                    correct = accuracy.add("", label)
                else:
                    correct = accuracy.add(result.text, label)
                    log.debug("%s: %s %r (label %r, probability %.4f)", name,
                              "correct" if correct else "incorrect", result.text, label, result.probability)
                    if on_result is not None:
                        on_result(record, label, result)
                if coverage is not None:
                    readable = isinstance(result, Result)
                    coverage.add(result.probability if readable else 0.0, correct,
                                 result.outside_lexicon if readable and result.unconstrained else None)
            name, headline = (("word accuracy", accuracy.word_accuracy) if headline_full_match
                              else ("character accuracy", accuracy.character_accuracy))
            progress.update(len(chunk), **{name: f"{100 * headline:.1f}%"})
    finally:
        progress.close()
    if unlearnable:
        log.warning("%d labels are outside the charset or longer than --max-prediction %d: the model cannot "
                    "produce them, and they count as errors", unlearnable, params.max_prediction)
    if accuracy.images == 0:
        raise AocrError(f"{dataset}: no readable record to test")
    return accuracy


def score_model(recognizer: Recognizer, dataset: str, batch_size: int, headline_full_match: bool = False,
                output_dir: str | None = None) -> Accuracy:
    """`aocr test`'s work: evaluate, then log the accuracy and the probabilities' coverage; closes the recognizer.

    output_dir, when given, receives the attention maps and an HTML report."""
    writer = AttentionWriter(output_dir) if output_dir is not None else None

    def visualize(record: Record, label: str, result: Result) -> None:
        writer.add(record.comment or f"record-{record.position}", record.image, result, label)

    coverage = Coverage()
    try:
        accuracy = evaluate(recognizer, dataset, batch_size, headline_full_match,
                            visualize if writer else None, coverage)
    finally:
        recognizer.close()
    if writer:
        log.info("attention maps and report: %s", writer.write_report(accuracy))
    log.info("%s", accuracy.summary())
    for line in coverage.summary_lines():
        log.info("%s", line)
    return accuracy
