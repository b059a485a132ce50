"""Checking that bytes are an image TensorFlow can decode, without TensorFlow."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

# Formats the graph's decoder (tf.io.decode_image) reads.
SUPPORTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP")


class BadImage(ValueError):
    """The bytes are not a complete PNG, JPEG, GIF or BMP image; the message says why."""


def image_size(data: bytes, full_decode: bool = True) -> tuple[int, int]:
    """(width, height) of an encoded image; raises BadImage if it is empty, truncated or unsupported.

    With full_decode the pixels are decoded too, which catches truncated files that a
    header alone would pass.
    """
    if not data:
        raise BadImage("empty file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in SUPPORTED_FORMATS:
                raise BadImage(f"{image.format} image; use PNG, JPEG, GIF or BMP")
            if full_decode:
                image.load()
            width, height = image.size
    except UnidentifiedImageError:
        raise BadImage("not a readable image: damaged, truncated, or not PNG/JPEG/GIF/BMP") from None
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, BadImage):
            raise
        raise BadImage(f"damaged or truncated image ({e})") from None
    if width < 1 or height < 1:
        raise BadImage(f"image has no pixels ({width}x{height})")
    return width, height
