"""Recognition from a trained model dir: encoded image bytes in, text, probability and attention out.

test and predict both run this, and it runs the same graph (recognize_bytes) that the
exports contain, so all three answer alike.
"""

from __future__ import annotations

import abc
import dataclasses
import itertools
import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import tensorflow as tf

from aocr.core import defaults
from aocr.core import params as model_params
from aocr.core.errors import first_line_of
from aocr.core.images import check_image_header, scaled_width
from aocr.core.params import GREEDY, Decoding, ModelParams
from aocr.core.session import (
    choose_checkpoint,
    model_device,
    require_checkpoint,
    restore,
    session_config,
    settle_decoding,
    with_constant_weights,
)
from aocr.inference.graph import recognize_bytes
from aocr.model.lexicon import decoding_lexicon, outside_lexicon
from aocr.model.model import Recognition

tf1 = tf.compat.v1
T = TypeVar("T")
BATCHES_IN_FLIGHT = 3
log = logging.getLogger("aocr")


@dataclass
class Candidate:
    """One of an image's best answers (--n-best)."""

    text: str
    probability: float
    char_probabilities: list[float]  # one per character of text


@dataclass
class Result:
    """What one image reads as: the best answer, and what a model dir's graph adds to it (attention, width)."""

    text: str
    probability: float
    # float32 [len(text) + 1, columns]: each step through EOS, over the real columns; None from an export
    attention: np.ndarray | None
    width: int | None  # the image's width in pixels as the CNN saw it (at --image-height); None from an export
    char_probabilities: list[float] = field(default_factory=list)  # one per character of text
    candidates: list[Candidate] = field(default_factory=list)  # the n-best answers, best first (this one first)
    unconstrained: Candidate | None = None  # with --lexicon: the greedy reading without it

    @property
    def outside_lexicon(self) -> bool:
        """With --lexicon: the answer is far less likely than the reading without it (aocr.model.lexicon)."""
        return self.unconstrained is not None and outside_lexicon(self.probability, self.unconstrained.probability)


@dataclass(frozen=True)
class Unreadable:
    """An image that gave no Result, and why: its header was refused (never decoded) or it did not decode."""

    reason: str


def candidate(text: bytes, probability: float, char_probabilities: np.ndarray) -> Candidate:
    """A Candidate from a graph's answer: UTF-8 text, its probability, and [steps] probabilities (cut to the text)."""
    decoded = text.decode("utf-8")
    return Candidate(decoded, float(probability), [float(p) for p in char_probabilities[:len(decoded)]])


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of up to `size` items, read lazily (so stdin and large datasets stream)."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def width_batches(images: Sequence[bytes], batch_size: int) -> list[list[int]]:
    """Indices of `images` in batches of up to batch_size images of similar width."""
    order = sorted(range(len(images)), key=lambda i: scaled_width(images[i]))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def _tensors(value: Any) -> list[tf.Tensor]:
    """The tensors in a Recognition (nested dataclasses of tensors and None)."""
    if isinstance(value, tf.Tensor):
        return [value]
    if dataclasses.is_dataclass(value):
        return [tensor for item in dataclasses.fields(value) for tensor in _tensors(getattr(value, item.name))]
    return []


def _in_graph(value: Any, graph: tf.Graph) -> Any:
    """`value` (a tensor, or a Recognition) with each tensor replaced by the one of the same name in `graph`."""
    if isinstance(value, tf.Tensor):
        return graph.get_tensor_by_name(value.name)
    if dataclasses.is_dataclass(value):
        return dataclasses.replace(value, **{item.name: _in_graph(getattr(value, item.name), graph)
                                             for item in dataclasses.fields(value)})
    return value


class BatchReader(abc.ABC):
    """Encoded images read in batches of similar width, an image that does not decode answered alone: what a
    model dir's Recognizer and an export's ExportedRecognizer (aocr.inference.exported) share.

    A subclass defines run_batch, and close to release its session.
    """

    max_pixels = defaults.MAX_IMAGE_PIXELS  # an image declaring more is answered with why, not decoded

    @abc.abstractmethod
    def run_batch(self, images: Sequence[bytes]) -> list[Result]:
        """One session run over images; raises tf.errors.InvalidArgumentError if one does not decode."""

    def recognize(self, images: Sequence[bytes], batch_size: int) -> list[Result | Unreadable]:
        """Results in input order, batching images of similar width together.

        An image the graph cannot decode, or whose header declares more than max_pixels
        pixels (never decoded), gives an Unreadable saying why instead of a Result; the others
        in its batch are still recognized.
        """
        problems = [check_image_header(image, self.max_pixels) for image in images]
        results: list[Result | Unreadable] = [Unreadable(problem or "") for problem in problems]
        decodable = [i for i, problem in enumerate(problems) if problem is None]
        batches = [[decodable[i] for i in batch] for batch in width_batches([images[i] for i in decodable],
                                                                             batch_size)]
        # Several batches in flight: one's image decoding and sequential LSTM steps fill the gaps
        # in another's convolutions.
        with ThreadPoolExecutor(max_workers=BATCHES_IN_FLIGHT) as pool:
            answers = pool.map(lambda batch: self._recognize_batch([images[i] for i in batch]), batches)
            for batch, answer in zip(batches, answers, strict=True):
                for index, result in zip(batch, answer, strict=True):
                    results[index] = result
        return results

    def _recognize_batch(self, images: list[bytes]) -> list[Result | Unreadable]:
        try:
            return self.run_batch(images)
        except tf.errors.InvalidArgumentError:
            return [self._recognize_alone(image) for image in images]  # find the bad one(s)

    def _recognize_alone(self, image: bytes) -> Result | Unreadable:
        try:
            return self.run_batch([image])[0]
        except tf.errors.InvalidArgumentError as e:
            return Unreadable(f"cannot decode the image ({first_line_of(e.message)})")

    def __enter__(self) -> BatchReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @abc.abstractmethod
    def close(self) -> None:
        """Release the session."""


class Recognizer(BatchReader):
    """The inference graph (recognize_bytes) in a session, fed with encoded images.

    Either loaded from a model dir (load, from_model_dir), or built inside another graph
    whose session already holds the variables, as training does for validation.
    """

    def __init__(self, session: tf1.Session, image_bytes: tf.Tensor, outputs: Recognition, params: ModelParams,
                 checkpoint: str | None = None) -> None:
        self.session = session
        self.image_bytes = image_bytes
        self.outputs = outputs
        self.params = params
        self.checkpoint = checkpoint

    @staticmethod
    def build(params: ModelParams, gpu_id: int | None = None,
              decoding: Decoding = GREEDY) -> tuple[tf.Tensor, Recognition]:
        """In the current graph: a placeholder for string [N] encoded images, and the recognition of them."""
        image_bytes = tf1.placeholder(tf.string, [None], name="image_bytes")
        with model_device(gpu_id):
            return image_bytes, recognize_bytes(image_bytes, params, decoding, decoding_lexicon(decoding, params))

    @classmethod
    def load(cls, model_dir: str, params: ModelParams, gpu_id: int | None = None,
             checkpoint: str | None = None, decoding: Decoding = GREEDY) -> Recognizer:
        """A fresh graph and session with the model dir's latest checkpoint (or the one given)."""
        checkpoint = checkpoint or require_checkpoint(model_dir)
        if decoding.precision == "bfloat16":
            log.info("bfloat16 convolutions (--precision float32 for the exports' float32 arithmetic)")
        graph = tf.Graph()
        with graph.as_default():
            image_bytes, outputs = cls.build(params, gpu_id, decoding)
            saver = tf1.train.Saver()
        graph.finalize()
        session = tf1.Session(graph=graph, config=session_config())
        restore(session, saver, checkpoint)
        session = with_constant_weights(session, [tensor.name for tensor in _tensors(outputs)])
        return cls(session, _in_graph(image_bytes, session.graph), _in_graph(outputs, session.graph), params,
                   checkpoint)

    @classmethod
    def from_model_dir(cls, model_dir: str, explicit: dict, gpu_id: int | None = None,
                       checkpoint: str = "best", decoding: Decoding = GREEDY) -> Recognizer:
        """Shapes come from params.json; flags given on the command line must agree with it.
        checkpoint: "best", "latest" or a path, as --checkpoint takes (aocr.core.session.choose_checkpoint)."""
        params = model_params.resolve(explicit, model_params.require(model_dir), model_dir)
        checkpoint = choose_checkpoint(model_dir, checkpoint)
        return cls.load(model_dir, params, gpu_id, checkpoint, settle_decoding(decoding, params, model_dir))

    def run_batch(self, images: Sequence[bytes]) -> list[Result]:
        """One session run over images; raises tf.errors.InvalidArgumentError if one does not decode."""
        out, best, free = self.outputs, self.outputs.candidates, self.outputs.unconstrained
        fetches = [out.attention, out.widths, best.texts, best.probabilities, best.char_probabilities]
        if free is not None:
            fetches += [free.texts, free.probabilities, free.char_probabilities]
        fetched = self.session.run(fetches, {self.image_bytes: list(images)})
        attention, widths, *answers = fetched[:5]
        readings = zip(*fetched[5:], strict=True) if free else [None] * len(images)
        results = []
        for weights, width, *ranked, reading in zip(attention, widths, *answers, readings, strict=True):
            candidates = [candidate(*answer) for answer in zip(*ranked, strict=True)]
            first = candidates[0]
            steps = min(len(first.text) + 1, weights.shape[0])
            columns = width // defaults.WIDTH_STRIDE
            unconstrained = candidate(*(column[0] for column in reading)) if reading is not None else None
            results.append(Result(first.text, first.probability, weights[:steps, :columns], int(width),
                                  first.char_probabilities, candidates, unconstrained))
        return results

    def close(self) -> None:
        """Release the session."""
        self.session.close()
