"""Random distortions of decoded training images, in TensorFlow ops inside the tf.data pipeline.

Applied to the image after preprocessing (at --image-height, values 0-255), so it costs a little
arithmetic on a small image and no Python per image. Test, predict and the exports never
call it: what is served is the undistorted preprocessing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf

from aocr.data.preprocess import WIDTH_STRIDE


@dataclass(frozen=True)
class Strength:
    """Ranges of the random distortions; each is drawn uniformly in [-x, x] or [low, high]."""

    rotation_degrees: float
    shear: float  # horizontal shift per pixel of height
    scale: tuple[float, float]  # zoom of the text inside the frame
    aspect: tuple[float, float]  # factor on the image's width
    shift_pixels: float  # translation, in pixels of the resized image
    blur_probability: float
    noise_std: float  # largest standard deviation of the Gaussian noise, in 0-255 units
    contrast: tuple[float, float]
    brightness: float  # largest shift of the mean, in 0-255 units


STRENGTHS = {
    "light": Strength(rotation_degrees=2.0, shear=0.15, scale=(0.92, 1.04), aspect=(0.85, 1.15),
                      shift_pixels=1.5, blur_probability=0.25, noise_std=6.0, contrast=(0.7, 1.15),
                      brightness=20.0),
    "strong": Strength(rotation_degrees=4.0, shear=0.35, scale=(0.85, 1.06), aspect=(0.7, 1.3),
                       shift_pixels=2.5, blur_probability=0.5, noise_std=14.0, contrast=(0.45, 1.25),
                       brightness=40.0),
}


def _uniform(low: float, high: float) -> tf.Tensor:
    return tf.random.uniform([], low, high)


def _stretch(image: tf.Tensor, width: tf.Tensor, strength: Strength, max_width: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Change the width by a random factor, kept a multiple of the CNN's stride within [stride, max_width]."""
    scaled = tf.cast(width, tf.float32) * _uniform(*strength.aspect)
    new_width = tf.clip_by_value(tf.cast(WIDTH_STRIDE * tf.round(scaled / WIDTH_STRIDE), tf.int32), WIDTH_STRIDE,
                                 max_width)
    return tf.image.resize(image, tf.stack([tf.shape(image)[0], new_width])), new_width


def _affine(image: tf.Tensor, width: tf.Tensor, strength: Strength) -> tf.Tensor:
    """Rotate, shear, zoom and shift about the centre; edges are filled with their nearest pixel."""
    angle = _uniform(-strength.rotation_degrees, strength.rotation_degrees) * (math.pi / 180.0)
    shear = _uniform(-strength.shear, strength.shear)
    inverse_scale = 1.0 / _uniform(*strength.scale)
    shift_x = _uniform(-strength.shift_pixels, strength.shift_pixels)
    shift_y = _uniform(-strength.shift_pixels, strength.shift_pixels)
    cos, sin = tf.cos(angle) * inverse_scale, tf.sin(angle) * inverse_scale
    centre_x, centre_y = tf.cast(width, tf.float32) / 2.0, tf.cast(tf.shape(image)[0], tf.float32) / 2.0
    # Output pixel (x, y) reads input (a0 x + a1 y + a2, b0 x + b1 y + b2).
    a0, a1 = cos, -sin + shear
    b0, b1 = sin, cos
    a2 = centre_x - a0 * centre_x - a1 * centre_y + shift_x
    b2 = centre_y - b0 * centre_x - b1 * centre_y + shift_y
    transform = tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])[None, :]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform, output_shape=tf.shape(image)[:2], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="NEAREST")[0]


def _blur(image: tf.Tensor, strength: Strength) -> tf.Tensor:
    """With probability blur_probability, a 3x3 Gaussian blur of random strength."""
    sigma = _uniform(0.4, 1.1)
    taps = tf.exp(-tf.square(tf.constant([-1.0, 0.0, 1.0])) / (2.0 * sigma * sigma))
    kernel2d = taps[:, None] * taps[None, :]
    kernel2d /= tf.reduce_sum(kernel2d)
    channels = image.shape[-1]
    kernel = tf.tile(kernel2d[:, :, None, None], [1, 1, channels, 1])
    blurred = tf.nn.depthwise_conv2d(image[None], kernel, strides=[1, 1, 1, 1], padding="SAME")[0]
    return tf.cond(tf.random.uniform([]) < strength.blur_probability, lambda: blurred, lambda: image)


def _photometric(image: tf.Tensor, strength: Strength) -> tf.Tensor:
    """Random contrast about the mean, brightness shift and Gaussian noise, clipped to 0-255."""
    mean = tf.reduce_mean(image)
    image = (image - mean) * _uniform(*strength.contrast) + mean + _uniform(-strength.brightness, strength.brightness)
    image += tf.random.normal(tf.shape(image)) * _uniform(0.0, strength.noise_std)
    return tf.clip_by_value(image, 0.0, 255.0)


def augment(image: tf.Tensor, width: tf.Tensor, level: str, max_width: int) -> tuple[tf.Tensor, tf.Tensor]:
    """A randomly distorted copy of one preprocessed image.

    image: float32 [H, width, C], values 0-255; width: int32 scalar, a multiple of 4.
    Returns (image float32 [H, new_width, C], new_width int32), new_width a multiple of 4
    in [4, max_width]. level "none" returns the image unchanged.
    """
    if level == "none":
        return image, width
    strength = STRENGTHS[level]
    image, width = _stretch(image, width, strength, max_width)
    image = _affine(image, width, strength)
    image = _blur(image, strength)
    return _photometric(image, strength), width
