"""The graph both export formats contain: encoded image bytes (a scalar or a batch) -> text and probability,
and each image's n-best candidates with their characters' probabilities.

Preprocessed images can be fed instead of bytes: the CNN's input is a tf.placeholder_with_default over
the graph's own decoding and resizing, so feeding it (the "pixels" signature) skips those ops."""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from aocr.core.params import GREEDY, Decoding, ModelParams
from aocr.core.savedmodel import BEAM_WIDTH_NAME, DECODER_NAME, EXPORT_FORMAT_VERSION, FORMAT_VERSION_NAME
from aocr.data.preprocess import preprocess_batch
from aocr.model.lexicon import decoding_lexicon
from aocr.model.model import recognize_pixels

tf1 = tf.compat.v1

# Tensor names of the original aocr's exports, kept so existing client code works.
INPUT_NAME = "input_image_as_bytes"
TEXT_NAME = "prediction"
PROBABILITY_NAME = "probability"
PIXELS_NAME = "input_pixels"
WIDTHS_NAME = "input_widths"


@dataclass
class ServingTensors:
    image_bytes: tf.Tensor  # string, a scalar or [N]
    text: tf.Tensor  # string, the same shape as image_bytes
    probability: tf.Tensor  # float64, the same shape as image_bytes
    texts: tf.Tensor  # string, image_bytes's shape + [n_best]: the candidates, best first
    probabilities: tf.Tensor  # float64, image_bytes's shape + [n_best]
    char_probabilities: tf.Tensor  # float32, image_bytes's shape + [n_best, max_prediction + 1], 0 from EOS on
    beam_width: tf.Tensor  # int32 scalar
    decoder: tf.Tensor  # string scalar: which head reads (aocr.core.defaults.DECODERS)
    pixels: tf.Tensor  # float32 [N, H, W, C], fed instead of image_bytes: resized to H = params.image_height,
    # 0-255, zero-padded
    widths: tf.Tensor  # int32 [N], fed with pixels: each image's width before the padding
    pixel_text: tf.Tensor  # string [N], the text of the pixels fed
    pixel_probability: tf.Tensor  # float64 [N]


def build_serving_graph(params: ModelParams, decoding: Decoding = GREEDY) -> ServingTensors:
    """In the current graph: a placeholder of any rank up to 1, recognized with the inference graph
    that `aocr test` and `aocr predict` run; outputs take the input's shape (the candidates' add
    their own dimensions after it)."""
    image_bytes = tf1.placeholder(tf.string, shape=None, name=INPUT_NAME)
    with tf.control_dependencies([tf.debugging.assert_less_equal(
            tf.rank(image_bytes), 1, message="input must be one encoded image or a list of them")]):
        batch = tf.reshape(image_bytes, [-1])
    decoded, decoded_widths = preprocess_batch(batch, params)
    pixels = tf1.placeholder_with_default(decoded, [None, params.image_height, None, params.channels], name=PIXELS_NAME)
    widths = tf1.placeholder_with_default(decoded_widths, [None], name=WIDTHS_NAME)
    recognition = recognize_pixels(pixels, widths, params, decoding, decoding_lexicon(decoding, params))
    shape = tf.shape(image_bytes)
    text = tf.reshape(recognition.text, shape, name=TEXT_NAME)
    probability = tf.reshape(recognition.probability, shape, name=PROBABILITY_NAME)
    best = recognition.candidates
    per_candidate = tf.concat([shape, [decoding.n_best]], axis=0)
    per_character = tf.concat([per_candidate, [params.decoder_steps]], axis=0)
    tf.constant(EXPORT_FORMAT_VERSION, tf.int32, name=FORMAT_VERSION_NAME)  # found by name (aocr.core.savedmodel)
    return ServingTensors(image_bytes, text, probability, tf.reshape(best.texts, per_candidate),
                          tf.reshape(best.probabilities, per_candidate),
                          tf.reshape(best.char_probabilities, per_character),
                          tf.constant(decoding.beam_width, tf.int32, name=BEAM_WIDTH_NAME),
                          tf.constant(decoding.decoder or params.decoder, tf.string, name=DECODER_NAME),
                          pixels, widths, recognition.text, recognition.probability)
