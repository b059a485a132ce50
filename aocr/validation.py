"""`aocr train --validation`: accuracy and attention images of held-out records at every checkpoint."""

from __future__ import annotations

import itertools
import logging

import tensorflow as tf

from aocr.data.records import expand_dataset_paths, iter_records
from aocr.errors import AocrError
from aocr.metrics import Accuracy
from aocr.params import ModelParams
from aocr.recognizer import Recognizer, Result
from aocr.summaries import write_scalars
from aocr.visualize import encode_png, stack_frames, step_frames

tf1 = tf.compat.v1
log = logging.getLogger("aocr")

VALIDATION_LIMIT = 2000
ATTENTION_SAMPLES = 3


class Validation:
    """Scores fixed validation records at each checkpoint with the training session's own weights:
    word and character accuracy as scalars, and attention images of a few samples."""

    def __init__(self, dataset: str, params: ModelParams, batch_size: int) -> None:
        records = itertools.islice(iter_records(expand_dataset_paths(dataset)), VALIDATION_LIMIT)
        charset = params.char_table
        self.samples = [(r.image, charset.normalize(r.label)) for r in records]
        if not self.samples:
            raise AocrError(f"--validation {dataset}: no readable record")
        self.batch_size = batch_size
        self.recognizer: Recognizer | None = None

    def build(self, params: ModelParams, gpu_id: int | None) -> None:
        """The inference graph, in the training graph, sharing the training variables."""
        with tf1.variable_scope(tf1.get_variable_scope(), reuse=True):
            self._tensors = Recognizer.build(params, gpu_id)
        self._params = params

    def attach(self, session: tf1.Session) -> None:
        self.recognizer = Recognizer(session, *self._tensors, self._params)

    def run(self, writer: tf1.summary.FileWriter, step: int) -> Accuracy:
        results = self.recognizer.recognize([image for image, _ in self.samples], self.batch_size)
        accuracy = Accuracy()
        for (_, label), result in zip(self.samples, results, strict=True):
            accuracy.add(result.text if isinstance(result, Result) else "", label)
        write_scalars(writer, step, {"validation/word_accuracy": accuracy.word_accuracy,
                                     "validation/character_accuracy": accuracy.character_accuracy})
        images = []
        for number, ((image, _), result) in enumerate(zip(self.samples[:ATTENTION_SAMPLES], results, strict=False)):
            if isinstance(result, Result):
                png = encode_png(stack_frames(step_frames(image, result)))
                images.append(tf1.Summary.Value(tag=f"attention/sample-{number + 1}", image=tf1.Summary.Image(
                    encoded_image_string=png, colorspace=3)))
        writer.add_summary(tf1.Summary(value=images), step)
        writer.flush()
        log.info("step %d: validation %s", step, accuracy.summary())
        return accuracy
