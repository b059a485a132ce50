"""Attention maps: for each image, one PNG per decoding step (the step's attention drawn over the
original image as a heat map, with the character it chose), an animated GIF of the steps,
word.txt, and an HTML report over all images that opens from the file system."""

from __future__ import annotations

import functools
import html
import importlib.resources
import io
import json
import re
from string import Template

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont

from aocr.core.files import join, write_bytes_atomic
from aocr.inference.metrics import Accuracy
from aocr.inference.recognizer import Result
from aocr.model.cnn import WIDTH_STRIDE

# Word crops are about 100x30 pixels: drawn at that size, a step's heat map and character are
# hard to make out, so frames are scaled up to DISPLAY_HEIGHT (never down, and no wider than
# MAX_DISPLAY_WIDTH), the image smoothly and the heat map column by column.
DISPLAY_HEIGHT = 112
MAX_DISPLAY_WIDTH = 1600
CAPTION_FONT_SIZE = 20
CAPTION_HEIGHT = 28
FRAME_MS = 500
HEAT_RED = np.array([255.0, 0.0, 0.0])
HEAT_OPACITY = 0.6


def attention_over_width(weights: np.ndarray, resized_width: int, original_width: int) -> np.ndarray:
    """One step's weights over encoder columns [columns] -> weights over the pixel columns of the image as
    drawn [original_width], whatever its scale. Column j covers the CNN's input pixels WIDTH_STRIDE*j ..
    WIDTH_STRIDE*(j+1)-1 (of resized_width), i.e. a WIDTH_STRIDE/resized_width share of the drawn width."""
    pixel = (np.arange(original_width) + 0.5) * resized_width / original_width
    column = np.clip((pixel // WIDTH_STRIDE).astype(int), 0, len(weights) - 1)
    spread = weights[column]
    return spread / max(float(spread.max()), 1e-9)


def display_size(width: int, height: int) -> tuple[int, int]:
    """The size an image of width x height is drawn at: scaled to DISPLAY_HEIGHT with its aspect ratio
    kept, narrowed to fit MAX_DISPLAY_WIDTH, never smaller than the image itself."""
    scale = max(1.0, min(DISPLAY_HEIGHT / height, MAX_DISPLAY_WIDTH / width))
    return max(1, round(width * scale)), max(1, round(height * scale))


@functools.lru_cache(maxsize=1)
def caption_font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at CAPTION_FONT_SIZE (a scalable one when Pillow has FreeType, which
    needs no font file), else its small bitmap font."""
    try:
        return ImageFont.load_default(size=CAPTION_FONT_SIZE)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def step_frames(image: bytes, result: Result) -> list[Image.Image]:
    """One RGB frame per decoding step through EOS: the image, scaled up to display_size, tinted red
    where the step looked, with a caption naming the step's character."""
    original = Image.open(io.BytesIO(image)).convert("RGB")
    width, height = display_size(*original.size)
    base = np.asarray(original.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    font = caption_font()
    frames = []
    for step, weights in enumerate(result.attention):
        heat = HEAT_OPACITY * attention_over_width(weights, result.width, width)[None, :, None]  # [1, W, 1]
        tinted = np.clip(base * (1 - heat) + HEAT_RED * heat, 0, 255)
        frame = Image.new("RGB", (width, height + CAPTION_HEIGHT), "white")
        frame.paste(Image.fromarray(tinted.astype(np.uint8)), (0, 0))
        char = result.text[step] if step < len(result.text) else "EOS"
        ImageDraw.Draw(frame).text((4, height + 3), f"{step + 1}: {char}", fill="black", font=font)
        frames.append(frame)
    return frames


def stack_frames(frames: list[Image.Image]) -> Image.Image:
    """All steps of one image in one picture, top to bottom (for TensorBoard)."""
    sheet = Image.new("RGB", (frames[0].width, sum(f.height for f in frames)), "white")
    for number, frame in enumerate(frames):
        sheet.paste(frame, (0, number * frame.height))
    return sheet


def encode_png(frame: Image.Image) -> bytes:
    buffer = io.BytesIO()
    frame.save(buffer, "PNG")
    return buffer.getvalue()


def encode_gif(frames: list[Image.Image]) -> bytes:
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=FRAME_MS, loop=0)
    return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def report_template() -> Template:
    """index.html's page (aocr/inference/templates/report.html, package data): $title, $summary, $count and $rows
    are filled in, each already HTML-escaped; its style and script are inline, so it opens offline."""
    page = importlib.resources.files("aocr.inference").joinpath("templates/report.html")
    return Template(page.read_text(encoding="utf-8"))


def safe_name(text: str) -> str:
    """A folder name from a source path or record name: its base name, without extension or odd characters."""
    base = re.split(r"[\\/]", text.rstrip("/\\"))[-1]
    base = base.rsplit(".", 1)[0] if "." in base else base
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", base) or "image"


class AttentionWriter:
    """Writes each image's folder as results come in and the HTML report at the end."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir
        self.entries: list[dict] = []
        self._used: set[str] = set()
        tf.io.gfile.makedirs(output_dir)

    def _folder(self, group: str, name: str) -> str:
        candidate, number = name, 1
        while f"{group}/{candidate}" in self._used:
            number += 1
            candidate = f"{name}-{number}"
        self._used.add(f"{group}/{candidate}")
        return f"{group}/{candidate}" if group else candidate

    def add(self, name: str, image: bytes, result: Result, label: str | None = None) -> str:
        """Write one image's steps, GIF and word.txt; returns its folder relative to output_dir."""
        correct = None if label is None else result.text == label
        group = "" if correct is None else ("correct" if correct else "incorrect")
        folder = self._folder(group, safe_name(name))
        directory = join(self.output_dir, folder)
        tf.io.gfile.makedirs(directory)
        frames = step_frames(image, result)
        for step, frame in enumerate(frames):
            write_bytes_atomic(join(directory, f"step-{step + 1:02d}.png"), encode_png(frame))
        write_bytes_atomic(join(directory, "attention.gif"), encode_gif(frames))
        lines = [f"prediction: {result.text}"] + ([f"label: {label}"] if label is not None else [])
        lines.append(f"probability: {result.probability:.6f}")
        write_bytes_atomic(join(directory, "word.txt"), ("\n".join(lines) + "\n").encode("utf-8"))
        self.entries.append({"name": name, "folder": folder, "label": label, "prediction": result.text,
                             "probability": result.probability, "correct": correct, "steps": len(frames)})
        return folder

    def write_report(self, accuracy: Accuracy | None = None, title: str = "aocr attention report") -> str:
        """index.html: every image with its GIF, incorrect ones first; no script or link leaves the folder."""
        entries = sorted(self.entries, key=lambda e: (e["correct"] is True, e["probability"]))
        summary = f"<p class='summary'>{html.escape(accuracy.summary())}</p>" if accuracy else ""
        rows = []
        for e in entries:
            status = "" if e["correct"] is None else ("correct" if e["correct"] else "incorrect")
            rows.append(
                f"<tr class='{status}'><td><img src='{html.escape(e['folder'])}/attention.gif' "
                f"alt='{html.escape(e['name'])}'></td><td>{html.escape(e['name'])}</td>"
                f"<td>{html.escape(e['label'] or '')}</td><td>{html.escape(e['prediction'])}</td>"
                f"<td>{e['probability']:.4f}</td><td>{status}</td></tr>")
        page = report_template().substitute(title=html.escape(title), summary=summary, count=len(entries),
                                            rows="\n".join(rows))
        path = join(self.output_dir, "index.html")
        write_bytes_atomic(path, page.encode("utf-8"))
        write_bytes_atomic(join(self.output_dir, "results.json"), json.dumps(entries, indent=1).encode("utf-8"))
        return path
