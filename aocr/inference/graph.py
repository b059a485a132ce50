"""The inference graph from encoded images: preprocessing (aocr.data) in front of the model (aocr.model).

It lives above both, so that the model and the data pipeline need not know each other."""

from __future__ import annotations

import tensorflow as tf

from aocr.core.params import GREEDY, Decoding, ModelParams
from aocr.data.preprocess import preprocess_batch
from aocr.model.lexicon import Lexicon
from aocr.model.model import Recognition, recognize_pixels


def recognize_bytes(image_bytes: tf.Tensor, params: ModelParams, decoding: Decoding = GREEDY,
                    lexicon: Lexicon | None = None) -> Recognition:
    """The inference graph from encoded images to text: what predict, test and the exports run.

    image_bytes: string [N], encoded PNG/JPEG/GIF/BMP images (see aocr.model.model.recognize_pixels for the rest).
    """
    images, widths = preprocess_batch(image_bytes, params)
    return recognize_pixels(images, widths, params, decoding, lexicon)
