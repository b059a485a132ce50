"""What `aocr dataset` reads: each INPUT is an annotation file ('path label' lines), a folder (searched
recursively) or a glob of line images with their transcriptions beside them as NAME.gt.txt (the
convention of ocropy, Calamari, kraken and tesstrain) or NAME.txt, or a PAGE-XML or ALTO file. Every source becomes
lines: where each one is (for messages), its text, and its image's bytes on demand."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from aocr.core import defaults
from aocr.core.errors import AocrError
from aocr.core.files import read_bytes
from aocr.data.annotations import BAD_CHARACTER, parse_annotations, read_utf8
from aocr.data.convert import as_decodable
from aocr.data.page_xml import read_page

# Line image names a .gt.txt may sit beside: NAME.png, NAME.bin.png, NAME.nrm.png, NAME.tif...
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")
# Double suffixes of ocropy's binarized and normalized line images, stripped to find the .gt.txt.
IMAGE_VARIANTS = (".bin", ".nrm")
GLOB_CHARACTERS = "*?["


@dataclass(frozen=True)
class Line:
    """One line to write: where it is (for messages), its text, what --save-filename stores, and its image's
    bytes in a format the graph decodes (TIFF and the like converted to PNG), read on demand."""

    where: str
    label: str
    comment: str
    image: str  # the image file: the line's own, or a PAGE/ALTO line's page
    load: Callable[[], bytes]


@dataclass(frozen=True)
class Unusable:
    """A source line that cannot be written, and why (kind: how the summary counts it)."""

    where: str
    reason: str
    kind: str


def _file_image(path: str, max_pixels: int) -> Callable[[], bytes]:
    return lambda: as_decodable(read_bytes(path), max_pixels)


def _annotation_lines(path: str, max_pixels: int) -> Iterator[Line | Unusable]:
    annotations, bad_lines, _ = parse_annotations(path)
    for bad in bad_lines:
        kind = "control characters" if bad.kind == BAD_CHARACTER else "malformed lines"
        yield Unusable(f"{path}, line {bad.line_number}", f"{bad.reason} ({bad.text[:80]!r})", kind)
    for item in annotations:
        yield Line(f"{path}, line {item.line_number}", item.label, item.path, item.path,
                   _file_image(item.path, max_pixels))


def ground_truth_of(image_path: str) -> str:
    """The transcription beside a line image NAME.png (or NAME.bin.png, NAME.nrm.png, NAME.tif...): NAME.gt.txt,
    the ocropy, kraken, Calamari and tesstrain convention, or else a plain NAME.txt where one exists."""
    stem = os.path.splitext(image_path)[0]
    for variant in IMAGE_VARIANTS:
        stem = stem.removesuffix(variant)
    plain = stem + ".txt"
    return plain if not os.path.exists(stem + ".gt.txt") and os.path.exists(plain) else stem + ".gt.txt"


def _image_line(image_path: str, max_pixels: int) -> Line | Unusable | None:
    """The line of an image with a .gt.txt beside it; None for an image without one (not a line of the set)."""
    truth = ground_truth_of(image_path)
    if not os.path.exists(truth):
        return None
    try:
        text = read_utf8(truth)
    except AocrError as e:
        return Unusable(truth, str(e).removeprefix(f"{truth}, "), "unreadable transcriptions")
    label = text.rstrip("\r\n")
    if "\n" in label or "\r" in label:
        return Unusable(truth, "more than one line of text; a line image has one", "unreadable transcriptions")
    return Line(truth, label, image_path, image_path, _file_image(image_path, max_pixels))


def _is_line_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _folder_files(folder: str) -> list[str]:
    """Every file under a folder, recursively, in a stable order."""
    found = [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names]
    return sorted(found)


def _path_lines(paths: list[str], max_pixels: int) -> Iterator[Line | Unusable]:
    """The lines of files found in a folder or by a glob: line images with a .gt.txt, and XML pages. A .gt.txt
    whose image is found under several names (NAME.bin.png and NAME.nrm.png) gives one line, the first."""
    used_truths: set[str] = set()
    for path in paths:
        if path.lower().endswith(".xml"):
            yield from _xml_lines(path, max_pixels)
        elif _is_line_image(path) and ground_truth_of(path) not in used_truths:
            line = _image_line(path, max_pixels)
            if line is not None:
                used_truths.add(ground_truth_of(path))
                yield line


def _xml_lines(path: str, max_pixels: int) -> Iterator[Line | Unusable]:
    lines, problems = read_page(path, max_pixels)
    for problem in problems:
        where, _, reason = problem.partition(": ")
        yield Unusable(where, reason, "lines without text or coordinates")
    for line in lines:
        yield Line(line.where, line.label, line.comment, line.image, line.load)


def read_input(spec: str, max_pixels: int = defaults.MAX_IMAGE_PIXELS) -> list[Line | Unusable]:
    """The lines of one INPUT of `aocr dataset`: a folder, a glob, a PAGE/ALTO file or an annotation file.
    A folder or glob with no line in it, or a missing input, is an AocrError naming it."""
    if any(character in spec for character in GLOB_CHARACTERS) and not os.path.exists(spec):
        paths = sorted(path for match in glob.glob(spec, recursive=True)
                       for path in (_folder_files(match) if os.path.isdir(match) else [match]))
        found = list(_path_lines(paths, max_pixels))
    elif os.path.isdir(spec):
        found = list(_path_lines(_folder_files(spec), max_pixels))
    elif spec.lower().endswith(".xml"):
        found = list(_xml_lines(spec, max_pixels))
    else:
        return list(_annotation_lines(spec, max_pixels))
    if not found:
        raise AocrError(f"{spec}: no line images with a transcription beside them (NAME.png and NAME.gt.txt or "
                        "NAME.txt), and no "
                        "PAGE-XML or ALTO file")
    return found
