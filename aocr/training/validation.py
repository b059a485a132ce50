"""`aocr train --validation`: accuracy and attention images of held-out records at every checkpoint, read by
each of the model's heads (greedily), the best of which the checkpoint is judged by."""

from __future__ import annotations

import itertools
import logging

import tensorflow as tf

from aocr.core import defaults
from aocr.core.errors import AocrError
from aocr.core.params import ModelParams
from aocr.data.records import expand_dataset_paths, iter_records
from aocr.inference.metrics import Accuracy
from aocr.inference.recognizer import Recognizer, Result
from aocr.inference.visualize import encode_png, stack_frames, step_frames
from aocr.model.model import Recognition
from aocr.training.summaries import write_scalars

tf1 = tf.compat.v1
log = logging.getLogger("aocr")

ATTENTION_SAMPLES = 3


class Validation:
    """Scores fixed validation records at each checkpoint with the training session's own weights:
    word and character accuracy as scalars, and attention images of a few samples."""

    def __init__(self, samples: list[tuple[bytes, str]], batch_size: int) -> None:
        """samples: (encoded image, label as the model is trained on it); batch_size: the training's.
        Validation reads in batches of at least `aocr test`'s size, which take less time per image."""
        self.samples = samples
        self.batch_size = max(batch_size, defaults.BATCH_SIZE)
        self.recognizers: dict[str, Recognizer] = {}

    @classmethod
    def from_dataset(cls, dataset: str, params: ModelParams, batch_size: int) -> Validation:
        """The first defaults.VALIDATION_LIMIT records of a `--validation` dataset."""
        records = itertools.islice(iter_records(expand_dataset_paths(dataset)), defaults.VALIDATION_LIMIT)
        charset = params.char_table
        samples = [(r.image, charset.normalize(r.label)) for r in records]
        if not samples:
            raise AocrError(f"--validation {dataset}: no readable record")
        return cls(samples, batch_size)

    def attach(self, session: tf1.Session, readers: dict[str, tuple[tf.Tensor, Recognition]],
               params: ModelParams) -> None:
        """Score with `readers` (decoder name -> Recognizer.build, in the training graph) in the training session."""
        self.recognizers = {decoder: Recognizer(session, *tensors, params) for decoder, tensors in readers.items()}

    def run(self, writer: tf1.summary.FileWriter, step: int) -> tuple[str, Accuracy]:
        """Score each reader; returns the best one's name and accuracy (more words right, then more characters;
        the first reader on a tie)."""
        images = [image for image, _ in self.samples]
        scores = {}
        for decoder, recognizer in self.recognizers.items():
            results = recognizer.recognize(images, self.batch_size)
            accuracy = Accuracy()
            for (_, label), result in zip(self.samples, results, strict=True):
                accuracy.add(result.text if isinstance(result, Result) else "", label)
            scores[decoder] = accuracy, results
        best = max(scores, key=lambda decoder: (scores[decoder][0].word_accuracy,
                                                scores[decoder][0].character_accuracy))
        accuracy, results = scores[best]
        write_scalars(writer, step, {"validation/word_accuracy": accuracy.word_accuracy,
                                     "validation/character_accuracy": accuracy.character_accuracy})
        self._write_attention(writer, step, results)
        others = "".join(f"; {decoder}: {score.summary()}" for decoder, (score, _) in scores.items() if decoder != best)
        log.info("step %d: validation %s, read by %s%s", step, accuracy.summary(), best, others)
        return best, accuracy

    def _write_attention(self, writer: tf1.summary.FileWriter, step: int, results: list) -> None:
        images = []
        for number, ((image, _), result) in enumerate(zip(self.samples[:ATTENTION_SAMPLES], results, strict=False)):
            if isinstance(result, Result):
                png = encode_png(stack_frames(step_frames(image, result)))
                images.append(tf1.Summary.Value(tag=f"attention/sample-{number + 1}", image=tf1.Summary.Image(
                    encoded_image_string=png, colorspace=3)))
        writer.add_summary(tf1.Summary(value=images), step)
        writer.flush()
