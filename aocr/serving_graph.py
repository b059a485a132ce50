"""The graph both export formats contain: encoded image bytes (a scalar or a batch) -> text and probability."""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from aocr.model.model import recognize_bytes
from aocr.params import ModelParams

tf1 = tf.compat.v1

# Tensor names of the original aocr's exports, kept so existing client code works.
INPUT_NAME = "input_image_as_bytes"
TEXT_NAME = "prediction"
PROBABILITY_NAME = "probability"


@dataclass
class ServingTensors:
    image_bytes: tf.Tensor  # string, a scalar or [N]
    text: tf.Tensor  # string, the same shape as image_bytes
    probability: tf.Tensor  # float64, the same shape as image_bytes


def build_serving_graph(params: ModelParams) -> ServingTensors:
    """In the current graph: a placeholder of any rank up to 1, recognized with the inference graph
    that `aocr test` and `aocr predict` run; outputs take the input's shape."""
    image_bytes = tf1.placeholder(tf.string, shape=None, name=INPUT_NAME)
    with tf.control_dependencies([tf.debugging.assert_less_equal(
            tf.rank(image_bytes), 1, message="input must be one encoded image or a list of them")]):
        batch = tf.reshape(image_bytes, [-1])
    recognition = recognize_bytes(batch, params)
    shape = tf.shape(image_bytes)
    text = tf.reshape(recognition.text, shape, name=TEXT_NAME)
    probability = tf.reshape(recognition.probability, shape, name=PROBABILITY_NAME)
    return ServingTensors(image_bytes, text, probability)
