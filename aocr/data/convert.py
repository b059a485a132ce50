"""Line images in formats TensorFlow's decoder does not read (TIFF above all, the format of much published
line ground truth), converted losslessly to PNG at dataset time, so that training, the exports and serving
keep to the formats the graph decodes."""

from __future__ import annotations

import io

from PIL import Image

from aocr.core import defaults
from aocr.core.images import BadImage, decodable_format

# Pillow modes a PNG stores as they are; any other mode is converted to one of these first.
PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"}


def _png_mode(image: Image.Image) -> Image.Image:
    """The image in a mode PNG stores: as it is where PNG has the mode, 16-bit grayscale as 16-bit, 32-bit
    grayscale (which PNG lacks) as 8-bit, colour spaces other than RGB as RGB."""
    if image.mode in PNG_MODES:
        return image
    if image.mode.startswith("I;16"):
        return image.convert("I;16")
    if image.mode in ("I", "F"):
        return image.convert("L")
    return image.convert("RGBA" if "A" in image.getbands() else "RGB")


def as_decodable(data: bytes, max_pixels: int = defaults.MAX_IMAGE_PIXELS) -> bytes:
    """The bytes themselves where TensorFlow decodes their format, else the first frame as PNG.

    Raises BadImage for bytes Pillow cannot read either, or an image over max_pixels (checked from
    the header, before any pixel is decoded).
    """
    if not data or decodable_format(data):
        return data
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise BadImage(f"{image.format} image of {width}x{height} ({width * height / 1e6:.1f} megapixels), "
                               f"over the limit of {max_pixels / 1e6:g} megapixels (--max-image-pixels)")
            image.load()
            out = io.BytesIO()
            _png_mode(image).save(out, "PNG")
    except BadImage:
        raise
    except Exception as e:  # Pillow raises many kinds for unreadable or damaged files
        raise BadImage(f"not a readable image ({e})") from None
    return out.getvalue()
