"""The one image preprocessing function: the training pipeline and the exported graph both call it."""

from __future__ import annotations

import tensorflow as tf

from aocr.core import defaults
from aocr.core.params import ModelParams

WIDTH_STRIDE = defaults.WIDTH_STRIDE


def preprocess_image(image_bytes: tf.Tensor, params: ModelParams) -> tuple[tf.Tensor, tf.Tensor]:
    """Decode one encoded image and bring it to the CNN's input form.

    image_bytes: scalar tf.string, a PNG, JPEG, GIF (first frame) or BMP file's bytes.
    Returns (image, width): image is float32 [H, width, channels] with values 0-255,
    resized to height H = params.image_height with its aspect ratio kept, and horizontally shrunk to
    params.image_width when it would be wider; width is an int32 scalar, a multiple of
    WIDTH_STRIDE (the CNN's horizontal stride, 4) between WIDTH_STRIDE and params.image_width.
    """
    decoded = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    decoded.set_shape([None, None, 3])
    if params.channels == 1:
        decoded = tf.image.rgb_to_grayscale(decoded)
    size = tf.cast(tf.shape(decoded)[:2], tf.float32)
    height = params.image_height
    scaled_width = size[1] * (height / size[0])
    width = tf.cast(WIDTH_STRIDE * tf.round(scaled_width / WIDTH_STRIDE), tf.int32)
    width = tf.clip_by_value(width, WIDTH_STRIDE, params.image_width)
    image = tf.image.resize(tf.cast(decoded, tf.float32), tf.stack([height, width]), antialias=True)
    image = tf.clip_by_value(image, 0.0, 255.0)
    return image, width


def pad_to_width(image: tf.Tensor, width: tf.Tensor, target_width: int | tf.Tensor) -> tf.Tensor:
    """Zero-pad one image [H, width, C] on the right to [H, target_width, C]."""
    return tf.pad(image, [[0, 0], [0, target_width - width], [0, 0]])


def preprocess_batch(image_bytes: tf.Tensor, params: ModelParams) -> tuple[tf.Tensor, tf.Tensor]:
    """Preprocess a batch of encoded images for inference.

    image_bytes: tf.string [N]. Returns (images float32 [N, H, W, C], widths int32 [N]),
    where W is the widest image of this batch (not the maximum width), so a batch of
    narrow images costs the CNN only what it needs.
    """

    def one(data: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, width = preprocess_image(data, params)
        return pad_to_width(image, width, params.image_width), width

    images, widths = tf.map_fn(
        one, image_bytes,
        fn_output_signature=(tf.TensorSpec([params.image_height, params.image_width, params.channels], tf.float32),
                             tf.TensorSpec([], tf.int32)),
        parallel_iterations=8)
    batch_width = tf.reduce_max(tf.concat([widths, [WIDTH_STRIDE]], axis=0))
    return images[:, :, :batch_width, :], widths
