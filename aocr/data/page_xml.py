"""Text lines of PAGE-XML (the 2010-2019 schemas) and ALTO (v2-v4) files, cropped from their page images.

Each line's crop is its polygon's bounding box, with the pixels outside the polygon set to the
background (the median of the box), so a neighbouring line's ascenders do not leak in; a line with a
box and no polygon is cropped by its box. PAGE takes the line's TextEquiv with the lowest index (the
first where none has one); ALTO joins its Strings, a space between words and the HYP's hyphen at the end.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import tensorflow as tf
from lxml import etree
from PIL import Image, ImageDraw

from aocr.core import defaults
from aocr.core.errors import AocrError
from aocr.core.files import read_bytes
from aocr.core.images import BadImage

Point = tuple[float, float]


@dataclass(frozen=True)
class PageLine:
    """One text line of a page: where it is (for messages), its text, and its crop as PNG bytes on demand."""

    where: str  # "page.xml, line ID"
    label: str
    comment: str  # what --save-filename stores: "page.xml#ID"
    image: str  # the page image's path
    load: Callable[[], bytes]


def _local(tag: object) -> str:
    """An element's tag without its namespace ('' for comments and processing instructions)."""
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _children(element: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in element if _local(child.tag) == name]


def _points(text: str) -> list[Point]:
    """'x1,y1 x2,y2 ...' (PAGE) or 'x1 y1 x2 y2 ...' (ALTO) -> [(x, y), ...]."""
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", text)]
    return list(zip(numbers[0::2], numbers[1::2], strict=False))


def _page_polygon(line: etree._Element) -> list[Point]:
    """A PAGE TextLine's Coords: the points attribute (2013 on) or Point children (2010)."""
    coords = _children(line, "Coords")
    if not coords:
        return []
    if coords[0].get("points"):
        return _points(coords[0].get("points"))
    return [(float(p.get("x", 0)), float(p.get("y", 0))) for p in _children(coords[0], "Point")]


def _page_text(line: etree._Element) -> str | None:
    """The Unicode of a PAGE TextLine's TextEquiv with the lowest index (the first where none has one)."""
    equivs = _children(line, "TextEquiv")
    if not equivs:
        return None
    chosen = min(equivs, key=lambda e: int(e.get("index")) if (e.get("index") or "").lstrip("-").isdigit() else 0)
    unicode = _children(chosen, "Unicode")
    return (unicode[0].text or "") if unicode else None


def _alto_polygon(line: etree._Element) -> list[Point]:
    """An ALTO TextLine's Shape/Polygon, else its HPOS/VPOS/WIDTH/HEIGHT box."""
    for shape in _children(line, "Shape"):
        for polygon in _children(shape, "Polygon"):
            return _points(polygon.get("POINTS", ""))
    x, y = float(line.get("HPOS", 0)), float(line.get("VPOS", 0))
    width, height = float(line.get("WIDTH", 0)), float(line.get("HEIGHT", 0))
    return [(x, y), (x + width, y), (x + width, y + height), (x, y + height)]


def _alto_text(line: etree._Element) -> str:
    """An ALTO TextLine's words: String CONTENT, a space for each SP (or between Strings), HYP's hyphen."""
    parts: list[str] = []
    for child in line:
        kind = _local(child.tag)
        if kind == "String":
            if parts and not parts[-1].endswith(" "):
                parts.append(" ")
            parts.append(child.get("CONTENT", ""))
        elif kind == "SP" and parts:
            parts.append(" ")
        elif kind == "HYP":
            parts.append(child.get("CONTENT", "-"))
    return "".join(parts).strip()


@lru_cache(maxsize=2)
def _page_image(path: str, max_pixels: int) -> Image.Image:
    """A page image, loaded once for all its lines (grayscale or RGB)."""
    try:
        with Image.open(io.BytesIO(read_bytes(path))) as image:
            if image.width * image.height > max_pixels:
                raise BadImage(f"{path}: page image of {image.width}x{image.height}, over the limit of "
                               f"{max_pixels / 1e6:g} megapixels (--max-image-pixels)")
            image.load()
            return image.convert("RGB" if image.mode in ("RGB", "RGBA", "CMYK", "P") else "L")
    except AocrError as e:
        raise BadImage(str(e)) from None
    except (OSError, ValueError) as e:
        raise BadImage(f"{path}: not a readable page image ({e})") from None


def crop_line(page: Image.Image, polygon: list[Point]) -> bytes:
    """PNG bytes of the polygon's bounding box on `page`, outside the polygon set to the box's median."""
    xs, ys = [x for x, _ in polygon], [y for _, y in polygon]
    left, top = max(0, int(min(xs))), max(0, int(min(ys)))
    right, bottom = min(page.width, int(np.ceil(max(xs))) + 1), min(page.height, int(np.ceil(max(ys))) + 1)
    if right - left < 2 or bottom - top < 2:
        raise BadImage(f"the line's region {left},{top}-{right},{bottom} holds no pixels of the page")
    box = page.crop((left, top, right, bottom))
    mask = Image.new("L", box.size, 0)
    ImageDraw.Draw(mask).polygon([(x - left, y - top) for x, y in polygon], fill=255)
    pixels = np.asarray(box)
    background = np.median(pixels.reshape(-1, len(box.getbands())), axis=0).astype(np.uint8)
    filled = Image.new(box.mode, box.size, tuple(background) if box.mode == "RGB" else int(background[0]))
    filled.paste(box, (0, 0), mask)
    out = io.BytesIO()
    filled.save(out, "PNG")
    return out.getvalue()


def _image_path(xml_path: str, name: str | None) -> str:
    """The page image an XML file names: relative to the XML's folder (or absolute), else by its file name
    in the XML's folder."""
    if not name:
        raise AocrError(f"{xml_path}: names no page image (PAGE imageFilename, ALTO sourceImageInformation)")
    folder = os.path.dirname(xml_path)
    candidates = [os.path.join(folder, name), os.path.join(folder, os.path.basename(name))]
    return next((path for path in candidates if tf.io.gfile.exists(path)), candidates[0])


def _lines_of(root: etree._Element, xml_path: str) -> tuple[str | None, Iterator[tuple[str, str | None, list]]]:
    """(the page image's name, (id, text, polygon) of each TextLine) of a PAGE or ALTO document."""
    lines = (element for element in root.iter() if _local(element.tag) == "TextLine")
    if _local(root.tag) == "PcGts":
        page = next((e for e in root.iter() if _local(e.tag) == "Page"), None)
        name = page.get("imageFilename") if page is not None else None
        return name, ((e.get("id", "?"), _page_text(e), _page_polygon(e)) for e in lines)
    if _local(root.tag) == "alto":
        units = next((e.text for e in root.iter() if _local(e.tag) == "MeasurementUnit"), "pixel")
        if (units or "pixel").strip() != "pixel":
            raise AocrError(f"{xml_path}: ALTO in {units.strip()} units; only pixel coordinates are read")
        name = next((e.text for e in root.iter() if _local(e.tag) == "fileName"), None)
        return name, ((e.get("ID", "?"), _alto_text(e), _alto_polygon(e)) for e in lines)
    raise AocrError(f"{xml_path}: neither PAGE-XML (PcGts) nor ALTO (alto), but <{_local(root.tag)}>")


def read_page(xml_path: str, max_pixels: int = defaults.MAX_IMAGE_PIXELS) -> tuple[list[PageLine], list[str]]:
    """The text lines of a PAGE-XML or ALTO file, and the problems of those that cannot be used (lines
    without text or coordinates). A file that cannot be parsed is an AocrError naming it."""
    try:
        root = etree.fromstring(read_bytes(xml_path), etree.XMLParser(resolve_entities=False, no_network=True,
                                                                       huge_tree=False))
    except etree.XMLSyntaxError as e:
        raise AocrError(f"{xml_path}: not well-formed XML ({e})") from None
    name, lines = _lines_of(root, xml_path)
    image_path = _image_path(xml_path, name)
    good: list[PageLine] = []
    problems: list[str] = []
    for line_id, text, polygon in lines:
        where = f"{xml_path}, line {line_id}"
        if text is None or not text.strip():
            problems.append(f"{where}: no text; skipped")
        elif len(polygon) < 2:
            problems.append(f"{where}: no coordinates; skipped")
        else:
            good.append(PageLine(where, text, f"{xml_path}#{line_id}", image_path,
                                 lambda polygon=polygon: crop_line(_page_image(image_path, max_pixels), polygon)))
    return good, problems
