"""Checking that bytes are an image TensorFlow can decode, without TensorFlow.

Every image a verb reads is checked here from its header before anything decodes it, so a
small file that declares an enormous image (a decompression bomb) is named and skipped
instead of costing gigabytes: `read_header` reads sizes only, never pixels, and
`check_image` compares the pixels a decoder would hold with a limit (--max-image-pixels).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from PIL import BmpImagePlugin, GifImagePlugin, Image, ImageFile, JpegImagePlugin, PngImagePlugin

from aocr.core import defaults

# Formats the graph's decoder (tf.io.decode_image) reads.
SUPPORTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP")
# The signatures tf.io.decode_image recognizes, and Pillow's reader of each. The readers are called
# directly because Image.open applies Pillow's own, looser bomb limit and raises before we can say more.
SIGNATURES: tuple[tuple[bytes, str, type[ImageFile.ImageFile]], ...] = (
    (b"\x89PNG", "PNG", PngImagePlugin.PngImageFile),
    (b"\xff\xd8\xff", "JPEG", JpegImagePlugin.JpegImageFile),
    (b"GIF8", "GIF", GifImagePlugin.GifImageFile),
    (b"BM", "BMP", BmpImagePlugin.BmpImageFile),
)
# Chunks a PNG may have before its image data (a real one has a dozen or so).
MAX_PNG_CHUNKS = 1000
# EXIF tag 0x0112: 1 means the pixels are stored upright; 2-8 mirror and/or rotate them.
EXIF_ORIENTATION = 0x0112
ORIENTATIONS = {2: "mirrored", 3: "rotated 180 degrees", 4: "flipped", 5: "mirrored and rotated 90 degrees",
                6: "rotated 90 degrees", 7: "mirrored and rotated 270 degrees", 8: "rotated 270 degrees"}


class BadImage(ValueError):
    """The bytes are not a complete PNG, JPEG, GIF or BMP image, or not one to decode; the message says why."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header declares, read without decoding a pixel."""

    format: str
    width: int
    height: int
    frames: int = 1  # a GIF's frames: TensorFlow's decoder reads them all, even when only the first is used
    pixels: int = 0  # pixels a decoder reads: width x height, or for a GIF all its frames' if more
    orientation: int = 1  # EXIF orientation of a JPEG

    def describe(self) -> str:
        frames = f" in {self.frames} frames" if self.frames > 1 else ""
        return f"{self.width}x{self.height}{frames} ({self.pixels / 1e6:.1f} megapixels)"


def _skip_sub_blocks(data: bytes, at: int) -> int:
    """The position after a GIF data sub-block chain starting at `at` (or the end of the data)."""
    while at < len(data):
        size = data[at]
        at += 1 + size
        if size == 0:
            break
    return at


def _color_table_size(flags: int) -> int:
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def gif_frames(data: bytes) -> tuple[int, int]:
    """(frames, pixels of all frames together) of a GIF, by walking its blocks.

    Only block headers are read: the image data is skipped, so a GIF of many frames costs
    a few microseconds a frame. A walk stops at the trailer or at anything malformed.
    """
    at = 13 + _color_table_size(data[10]) if len(data) > 10 else len(data)
    frames = pixels = 0
    while at < len(data):
        kind = data[at]
        if kind == 0x21:  # extension: label, then sub-blocks
            at = _skip_sub_blocks(data, at + 2)
        elif kind == 0x2C and at + 10 <= len(data):  # image descriptor
            width, height = struct.unpack_from("<HH", data, at + 5)
            at = _skip_sub_blocks(data, at + 10 + _color_table_size(data[at + 9]) + 1)
            frames += 1
            pixels += width * height
        else:  # the trailer (0x3B) or garbage: a decoder stops here too
            break
    return frames, pixels


def _check_png_chunks(data: bytes) -> None:
    """Refuse a PNG with more than MAX_PNG_CHUNKS chunks before its first IDAT: reading such a header
    (empty ancillary chunks, 12 bytes each) would cost Python time in proportion to the file's size."""
    at = 8
    for _ in range(MAX_PNG_CHUNKS + 1):
        if at + 8 > len(data) or data[at + 4:at + 8] == b"IDAT":
            return
        at += 12 + struct.unpack_from(">I", data, at)[0]
    raise BadImage(f"PNG with over {MAX_PNG_CHUNKS} chunks before its image data")


def _open(data: bytes) -> ImageFile.ImageFile:
    """Pillow's reader for the format TensorFlow will see, with only the header read."""
    if data.startswith(b"\x89PNG"):
        _check_png_chunks(data)
    for signature, _, reader in SIGNATURES:
        if data.startswith(signature):
            return reader(io.BytesIO(data))
    try:  # not a format TensorFlow reads: name it if Pillow can
        with Image.open(io.BytesIO(data)) as image:
            found = image.format
    except Exception:  # any failure means "not an image we know"
        found = None
    if found:
        raise BadImage(f"{found} image; use PNG, JPEG, GIF or BMP")
    raise BadImage("not a readable image: damaged, truncated, or not PNG/JPEG/GIF/BMP")


def read_header(data: bytes) -> ImageHeader:
    """The format, size, frames and orientation an encoded image declares; no pixel is decoded.

    Raises BadImage if the bytes are empty, not PNG/JPEG/GIF/BMP, or the header is damaged.
    """
    if not data:
        raise BadImage("empty file")
    try:
        with _open(data) as image:
            width, height = image.size
            orientation = image.getexif().get(EXIF_ORIENTATION, 1) if image.format == "JPEG" else 1
            fmt = image.format
    except BadImage:
        raise
    except Exception as e:  # Pillow's readers raise many kinds for damaged headers
        raise BadImage(f"damaged or truncated image ({e})") from None
    if width < 1 or height < 1:
        raise BadImage(f"image has no pixels ({width}x{height})")
    frames, pixels = 1, width * height
    if fmt == "GIF":
        frames, frame_pixels = gif_frames(data)
        pixels = max(pixels, frame_pixels)
    return ImageHeader(fmt, width, height, max(frames, 1), pixels, orientation if orientation in range(1, 9) else 1)


def check_image(data: bytes, max_pixels: int = defaults.MAX_IMAGE_PIXELS, upright: bool = False) -> ImageHeader:
    """The image's header if it may be decoded; raises BadImage naming the problem otherwise.

    max_pixels: the most pixels a decoder may read (--max-image-pixels), checked from the
    header. upright: refuse JPEGs whose EXIF orientation asks for a rotation or mirroring,
    which TensorFlow's decoder (and so training and the exported model) ignores.
    """
    header = read_header(data)
    if header.pixels > max_pixels:
        raise BadImage(_over_limit(header, max_pixels) + " (--max-image-pixels)")
    if upright and header.orientation != 1:
        raise BadImage(f"EXIF orientation {header.orientation} ({ORIENTATIONS[header.orientation]}), which aocr "
                       "ignores: it would read the pixels as stored; rotate them (e.g. `mogrify -auto-orient`)")
    return header


def scaled_width(image: bytes) -> float:
    """Width after resizing to height 32, from the header alone (for grouping by width); 0 when unreadable."""
    try:
        with _open(image) as opened:
            width, height = opened.size
    except Exception:  # any unreadable header: the graph will say what is wrong
        return 0.0
    return width * defaults.IMAGE_HEIGHT / max(height, 1)


def check_image_header(data: bytes, max_pixels: int = defaults.MAX_IMAGE_PIXELS) -> str | None:
    """Why these bytes must not be decoded (for a 400 answer), or None when they may be.

    Reads the header only: unreadable, unsupported, or declaring more than max_pixels pixels.
    """
    try:
        check_image(data, max_pixels)
    except BadImage as e:
        return str(e)
    return None


def decodable_format(data: bytes) -> bool:
    """Whether the bytes start with the signature of a format TensorFlow's decode_image reads (PNG, JPEG, GIF,
    BMP)."""
    return any(data.startswith(signature) for signature, _, _ in SIGNATURES)


def check_served_image(data: bytes, max_pixels: int = defaults.MAX_IMAGE_PIXELS) -> ImageHeader:
    """The header of an image a server may decode; raises BadImage naming why not.

    Fails closed: bytes whose size cannot be read from their header are not decoded, since the
    decoder would not be bound by the pixel limit. Where TensorFlow's decoder would refuse the
    bytes too (empty, or no signature of PNG/JPEG/GIF/BMP), the message is its own, as TF Serving
    clients know it.
    """
    if not data:
        raise BadImage("Input is empty.")
    if not decodable_format(data):
        raise BadImage("Unknown image file format. One of JPEG, PNG, GIF, BMP required.")
    try:
        header = read_header(data)
    except BadImage as e:
        raise BadImage(f"{e}; its size cannot be read from its header, so it is not decoded") from None
    if header.pixels > max_pixels:
        raise BadImage(_over_limit(header, max_pixels))
    return header


def _over_limit(header: ImageHeader, max_pixels: int) -> str:
    return f"declares {header.describe()}, over the limit of {max_pixels / 1e6:g} megapixels"


def image_size(data: bytes, full_decode: bool = True, max_pixels: int = defaults.MAX_IMAGE_PIXELS,
               upright: bool = False) -> tuple[int, int]:
    """(width, height) of an encoded image; raises BadImage if it is empty, truncated, unsupported,
    over max_pixels or (with upright) turned by its EXIF orientation.

    The header is checked first (check_image); with full_decode the pixels are then decoded
    too, which catches truncated files that a header alone would pass.
    """
    header = check_image(data, max_pixels, upright)
    if full_decode:
        try:
            with _open(data) as image:
                image.load()
        except Exception as e:  # Pillow's decoders raise many kinds for damaged data
            raise BadImage(f"damaged or truncated image ({e})") from None
    return header.width, header.height
