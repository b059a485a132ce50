"""Rendered text images for sample data, tests and benchmarks: deterministic for a given seed."""

from __future__ import annotations

import os
import random
import string
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "C:\\Windows\\Fonts")


def find_fonts(limit: int = 8) -> list[str]:
    """Up to `limit` TrueType fonts found on this machine, sorted for determinism."""
    found = []
    for directory in FONT_DIRS:
        for root, _, names in os.walk(directory):
            found.extend(os.path.join(root, n) for n in names if n.lower().endswith(".ttf"))
    # Prefer plain faces: thin or decorative ones make the task needlessly hard for a sample.
    plain = [f for f in sorted(found) if not any(w in f for w in ("ExtraLight", "Thin", "Symbol", "Emoji"))]
    return plain[:limit]


def load_font(path: str | None, size: int) -> ImageFont.ImageFont:
    """A TrueType font from `path`, or Pillow's own built-in font when None."""
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def random_text(rng: random.Random, min_length: int, max_length: int,
                alphabet: str = string.digits + string.ascii_uppercase) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(min_length, max_length)))


def render(text: str, rng: random.Random, font: ImageFont.ImageFont, distort: bool = True) -> Image.Image:
    """Dark text on a light background, grayscale, with a margin; with `distort`, a slight
    rotation, blur and noise."""
    left, top, right, bottom = font.getbbox(text)
    margin = rng.randint(2, 6)
    image = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), rng.randint(200, 255))
    ImageDraw.Draw(image).text((margin - left, margin - top), text, font=font, fill=rng.randint(0, 60))
    if distort:
        image = image.rotate(rng.uniform(-3, 3), resample=Image.BILINEAR, expand=True,
                             fillcolor=image.getpixel((0, 0)))
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))
        noise = Image.effect_noise(image.size, rng.uniform(2, 12))
        image = Image.blend(image, noise, 0.12)
    return image


def make_dataset(directory: str | Path, count: int, seed: int, min_length: int = 3, max_length: int = 8,
                 fonts: Sequence[str | None] | None = None, annotation_name: str = "annotations.txt",
                 distort: bool = True) -> Path:
    """Write `count` PNGs under directory/images and an annotation file of 'path label' lines.

    The paths are written as `directory/images/NNNNN.png`: relative when `directory` is,
    and then, as `aocr dataset` reads them, relative to the working directory. Returns
    the annotation file's path.
    """
    directory = Path(directory)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    font_paths = list(fonts) if fonts else ([*find_fonts(), None])
    lines = []
    for number in range(count):
        text = random_text(rng, min_length, max_length)
        font = load_font(rng.choice(font_paths), rng.randint(20, 30))
        name = directory / "images" / f"{number:05d}.png"
        render(text, rng, font, distort).save(name)
        lines.append(f"{name} {text}\n")
    annotations = directory / annotation_name
    annotations.write_text("".join(lines), encoding="utf-8")
    return annotations
