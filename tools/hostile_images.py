"""Small image files that are hard on a decoder, made from scratch for the tests and the memory benchmark.

    python tools/hostile_images.py DIR     writes each of them into DIR

Each is under 1 MB on disk. The "bombs" declare an enormous image: complete, valid PNG (1 bit a
pixel, 150 KB) and GIF (600 KB) files of 30000x30000, 900 million pixels each when decoded, and
a JPEG whose header declares 65000x65000 followed by the data of 16x16. The others are odd but
legitimate: an animated GIF of 10,000 frames, a 16-bit PNG, a CMYK JPEG, a PNG with an alpha
channel and a JPEG whose EXIF orientation says "rotate 90 degrees". Further builders make the
headers that a server must refuse unsized (a WebP, PNGs whose ancillary chunks Pillow rejects, a PNG of
many empty chunks) and a PNG of any declared size: benchmarks/hostile_server.py sends them all.
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

# GIF's LZW codes are at most 12 bits wide: the table holds 4096 codes.
LZW_TABLE_SIZE = 4096


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A complete, valid 1-bit grayscale PNG of width x height white pixels (a few hundred bytes per
    million pixels); decoded to 8-bit RGB it takes 3 bytes a pixel."""
    row = b"\0" + b"\xff" * ((width + 7) // 8)  # filter type 0, then the packed bits
    compressor = zlib.compressobj(9)
    chunks = [compressor.compress(row * min(1000, height - start)) for start in range(0, height, 1000)]
    data = b"".join(chunks) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


# Where a PNG's first chunk after IHDR goes: the 8-byte signature, then IHDR (length, type, 13 bytes, CRC).
_IHDR_END = 8 + 12 + 13


def _after_header(png: bytes, chunks: bytes) -> bytes:
    """`png` with `chunks` (whole chunks) put right after its IHDR, before its image data."""
    return png[:_IHDR_END] + chunks + png[_IHDR_END:]


def png_with_a_broken_chunk(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG bomb with a tEXt chunk whose CRC is wrong before its image data: Pillow refuses the header,
    where libpng only warns and decodes on."""
    text = _png_chunk(b"tEXt", b"Comment\0broken")
    return _after_header(png_bomb(width, height), text[:-4] + b"\0\0\0\0")


def png_with_a_compressed_chunk(kind: bytes = b"zTXt", method: int = 1, inflated: int = 16,
                                width: int = 20000, height: int = 20000) -> bytes:
    """A PNG bomb with a zTXt or iCCP chunk before its image data whose compression method byte is `method`
    (only 0, zlib, exists) and whose data inflate to `inflated` bytes. Pillow refuses the header for an unknown
    method, or for text that inflates past its limit (1 MB); libpng skips such a chunk with a warning and
    decodes on."""
    keyword = b"Comment" if kind == b"zTXt" else b"ICC profile"
    data = keyword + b"\0" + bytes([method]) + zlib.compress(b"\0" * inflated, 9)
    return _after_header(png_bomb(width, height), _png_chunk(kind, data))


def png_of_empty_chunks(count: int) -> bytes:
    """A small valid PNG with `count` empty ancillary chunks before its image data."""
    return _after_header(png_bomb(8, 8), _png_chunk(b"tEXt", b"") * count)


def png_declaring(width: int, height: int) -> bytes:
    """About 70 bytes: a PNG whose header declares width x height 8-bit RGB pixels, and whose image data are a
    few bytes that inflate to far fewer (a header check sizes it; a decoder finds it truncated)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + _png_chunk(b"IEND", b""))


def webp_lossless_header(width: int = 16383, height: int = 16383) -> bytes:
    """The 38-odd bytes of a lossless WebP that declares width x height (the largest WebP allows by default)."""
    bits = (width - 1) | ((height - 1) << 14)  # 14 bits each, then alpha and version bits left 0
    payload = b"\x2f" + struct.pack("<I", bits) + b"\0" * 20
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


class _BitWriter:
    """Little-endian bit packing, as GIF's LZW data is written."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.value = self.bits = 0

    def write(self, code: int, width: int) -> None:
        self.value |= code << self.bits
        self.bits += width
        while self.bits >= 8:
            self.out.append(self.value & 0xFF)
            self.value >>= 8
            self.bits -= 8

    def data(self) -> bytes:
        return bytes(self.out) + (bytes([self.value]) if self.bits else b"")


def lzw_constant(count: int, index: int = 0, min_code_size: int = 2) -> bytes:
    """GIF LZW data for `count` pixels all of colour `index`, without looping over the pixels.

    For a run of one value the encoder's table grows as 'vv', 'vvv', ...: after the first
    single pixel, each code emitted covers one pixel more than the one before, until the
    table is full and a clear code starts again.
    """
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    writer = _BitWriter()
    remaining = count
    while remaining > 0:
        width, next_code = min_code_size + 1, end + 1
        writer.write(clear, width)
        length, code = 1, index  # the code about to be emitted covers `length` pixels
        while remaining > 0:
            if remaining < length:  # the tail: the table already holds a code for exactly this run
                length, code = remaining, (index if remaining == 1 else end - 1 + remaining)
            writer.write(code, width)
            remaining -= length
            if next_code == LZW_TABLE_SIZE:
                break
            next_code += 1  # the table learns this run plus one more pixel
            if next_code > (1 << width) and width < 12:
                width += 1
            length, code = length + 1, next_code - 1
    writer.write(end, width)
    return writer.data()


def _sub_blocks(data: bytes) -> bytes:
    return b"".join(bytes([len(data[i:i + 255])]) + data[i:i + 255] for i in range(0, len(data), 255)) + b"\0"


def _gif_frame(width: int, height: int, index: int, delay: int = 0) -> bytes:
    control = b"\x21\xf9\x04\x00" + struct.pack("<H", delay) + b"\x00\x00"
    descriptor = b"\x2c" + struct.pack("<HHHH", 0, 0, width, height) + b"\x00"
    return control + descriptor + b"\x02" + _sub_blocks(lzw_constant(width * height, index))


def gif(width: int, height: int, frames: int = 1) -> bytes:
    """A valid GIF of `frames` frames of width x height, alternately black and white."""
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00" if frames > 1 else b""
    one = [_gif_frame(width, height, i, delay=2) for i in (0, 1)]
    return header + loop + b"".join(one[n % 2] for n in range(frames)) + b"\x3b"


def gif_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A complete, valid GIF of width x height black pixels (600 KB for 30000x30000)."""
    return gif(width, height)


def text_image(mode: str = "RGB", size: tuple[int, int] = (120, 32), text: str = "42") -> Image.Image:
    """Dark text on a light background in the given Pillow mode."""
    image = Image.new("RGB", size, (250, 250, 250))
    ImageDraw.Draw(image).text((8, 8), text, fill=(10, 10, 10))
    return image.convert(mode)


def encode(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def jpeg_bomb(width: int = 65000, height: int = 65000) -> bytes:
    """A small grayscale JPEG whose frame header (SOF0) is rewritten to declare width x height."""
    data = bytearray(encode(text_image("L", (16, 16)), "JPEG"))
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_16bit() -> bytes:
    """Grayscale 16 bits per sample."""
    gray = text_image("L")
    wide = Image.frombytes("I;16", gray.size, bytes(b for v in gray.tobytes() for b in (v, v)))
    return encode(wide, "PNG")


def exif_rotated_jpeg() -> bytes:
    """Pixels stored on their side, with EXIF orientation 6: a viewer rotates them 90 degrees clockwise."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(text_image().transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif.tobytes())


HOSTILE: dict[str, Callable[[], bytes]] = {
    "png-30000x30000.png": png_bomb,
    "gif-30000x30000.gif": gif_bomb,
    "jpeg-65000x65000.jpg": jpeg_bomb,
    "animated-10000-frames.gif": lambda: gif(120, 32, frames=10000),
}
ODD: dict[str, Callable[[], bytes]] = {
    "gray-16bit.png": png_16bit,
    "cmyk.jpg": lambda: encode(text_image("CMYK"), "JPEG"),
    "alpha.png": lambda: encode(text_image("RGBA"), "PNG"),
    "exif-rotated.jpg": exif_rotated_jpeg,
}


def write_all(directory: Path) -> list[Path]:
    """Every hostile and odd file into `directory`; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in {**HOSTILE, **ODD}.items():
        path = directory / name
        path.write_bytes(make())
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-images")):
        print(f"{written}: {written.stat().st_size} bytes")
