"""`aocr predict`'s library (its flags: aocr.cli.predict): image files -> 'path<TAB>text<TAB>probability' lines
on stdout, or with --format jsonl one JSON object per image (per-character probabilities, and the n-best
candidates).

Paths come from the arguments (files, or directories of images) or, with none, from
stdin one per line, so `find ... | aocr predict` works as it did in the original.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator

import tensorflow as tf

from aocr.core import defaults
from aocr.core.errors import AocrError
from aocr.core.files import join, read_bytes
from aocr.core.images import BadImage, image_size
from aocr.inference.recognizer import Recognizer, Result, Unreadable, chunks
from aocr.inference.visualize import AttentionWriter

log = logging.getLogger("aocr")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
# Images (predict) or records (test) read ahead and recognized together, this many batches' worth
# at a time, so that images of similar width can share a batch.
CHUNK_BATCHES = 4


def expand_paths(arguments: Iterable[str]) -> Iterator[str]:
    """Each argument as is, or a directory's image files in sorted order."""
    for path in arguments:
        if tf.io.gfile.isdir(path):
            names = sorted(n for n in tf.io.gfile.listdir(path) if n.lower().endswith(IMAGE_SUFFIXES))
            yield from (join(path, n) for n in names)
        else:
            yield path


def stdin_paths() -> Iterator[str]:
    for line in sys.stdin:
        path = line.rstrip("\r\n")
        if path.strip():
            yield path


def read_image(path: str, max_pixels: int = defaults.MAX_IMAGE_PIXELS) -> bytes | Unreadable:
    """The file's bytes, or why they cannot be used (unreadable, over max_pixels by its header, or turned
    by an EXIF orientation that the model would not see)."""
    try:
        data = read_bytes(path)
        image_size(data, max_pixels=max_pixels, upright=True)
    except AocrError as e:
        return Unreadable(str(e).removeprefix(f"{path}: "))
    except BadImage as e:
        return Unreadable(str(e))
    return data


def _characters(text: str, probabilities: list[float]) -> list[dict]:
    return [{"char": char, "probability": round(p, 6)} for char, p in zip(text, probabilities, strict=True)]


def json_line(path: str, result: Result, with_candidates: bool) -> str:
    """One image's answer as a JSON object on one line: path, text, probability, characters (each with
    its probability), with_candidates the n-best candidates in the same form, best first, and with a
    lexicon the reading without it and whether the answer is flagged as outside the lexicon."""
    answer = {"path": path, "text": result.text, "probability": round(result.probability, 6),
              "characters": _characters(result.text, result.char_probabilities)}
    if with_candidates:
        answer["candidates"] = [{"text": c.text, "probability": round(c.probability, 6),
                                 "characters": _characters(c.text, c.char_probabilities)} for c in result.candidates]
    if result.unconstrained is not None:
        answer["outside_lexicon"] = result.outside_lexicon
        answer["unconstrained"] = {"text": result.unconstrained.text,
                                   "probability": round(result.unconstrained.probability, 6)}
    return json.dumps(answer, ensure_ascii=False) + "\n"


def tsv_line(path: str, result: Result) -> str:
    return f"{path}\t{result.text}\t{result.probability:.6f}\n"


def predict(recognizer: Recognizer, paths: Iterable[str], batch_size: int, chunk_size: int,
            writer: AttentionWriter | None = None,
            line: Callable[[str, Result], str] = tsv_line) -> tuple[int, int]:
    """Print one line per readable image (`line` of its path and Result), in input order; returns
    (recognized, failed). With a writer, each image's attention maps go into a folder named after the file.
    """
    recognized = failed = 0
    for chunk in chunks(paths, chunk_size):
        loaded = [(path, read_image(path, recognizer.max_pixels)) for path in chunk]
        good = [(path, data) for path, data in loaded if isinstance(data, bytes)]
        results = iter(recognizer.recognize([data for _, data in good], batch_size))
        for path, data in loaded:
            outcome = next(results) if isinstance(data, bytes) else data
            if isinstance(outcome, Unreadable):
                print(f"aocr predict: {path}: {outcome.reason}; skipped", file=sys.stderr, flush=True)
                failed += 1
            else:
                sys.stdout.write(line(path, outcome))
                recognized += 1
                if writer is not None:
                    writer.add(path, data, outcome)
        sys.stdout.flush()
    return recognized, failed


def predict_files(recognizer: Recognizer, paths: list[str], batch_size: int, output_format: str = "tsv",
                  with_candidates: bool = False, output_dir: str | None = None) -> None:
    """`aocr predict`'s work: each image of `paths` (files or directories; none: stdin's lines) read and its
    line printed; closes the recognizer. output_format: "tsv" or "jsonl" (with_candidates: the n-best with it);
    output_dir, when given, receives the attention maps and their report."""
    interactive = not paths and sys.stdin.isatty()
    if interactive:
        log.info("reading image paths from the terminal, one per line; Ctrl-D to end")
    named = expand_paths(paths) if paths else stdin_paths()
    # At a terminal each path is answered at once; in a pipe, images are batched.
    chunk_size = 1 if interactive else batch_size * CHUNK_BATCHES
    writer = AttentionWriter(output_dir) if output_dir is not None else None
    line = tsv_line if output_format == "tsv" else (lambda path, result: json_line(path, result, with_candidates))
    try:
        recognized, failed = predict(recognizer, named, batch_size, chunk_size, writer, line)
    finally:
        recognizer.close()
        if writer and writer.entries:
            log.info("attention maps and report: %s", writer.write_report(title="aocr predict: attention"))
    if recognized == 0:
        raise AocrError("no image could be read" if failed else "no image path given")
    if failed:
        log.warning("%d of %d images could not be read", failed, recognized + failed)
