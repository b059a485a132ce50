"""Shared by the benchmark scripts: generated data, machine facts, result tables."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"

# The setup the figures for the original aocr were measured with.
SHAPE = {"max_width": 200, "max_height": 48, "max_prediction": 8}
SHAPE_FLAGS = ["--max-width", "200", "--max-height", "48", "--max-prediction", "8"]


def machine() -> dict:
    """CPU model, core count and the vector extensions that matter to TensorFlow's kernels."""
    model, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16"]
    import tensorflow as tf

    return {"cpu": model, "cores": os.cpu_count(), "flags": [f for f in wanted if f in flags],
            "tensorflow": tf.__version__, "python": sys.version.split()[0]}


def rendered_set(name: str, count: int, seed: int) -> tuple[Path, Path]:
    """(annotations, tfrecords) of `count` rendered 3-8 character strings in several fonts with slight
    rotation, blur and noise; made once and kept under benchmarks/out."""
    from aocr.data.synthetic import make_dataset

    directory = OUT / name
    annotations = directory / "annotations.txt"
    tfrecords = directory / "data.tfrecords"
    if not tfrecords.exists():
        make_dataset(directory, count, seed=seed, min_length=3, max_length=8)
        subprocess.run([sys.executable, "-m", "aocr", "dataset", str(annotations), str(tfrecords),
                        "--log-path", ""], check=True)
    return annotations, tfrecords


def captcha_set(name: str, count: int, seed: int) -> tuple[Path, Path]:
    """(annotations, tfrecords) of `count` distorted captcha-style images (160x60, 4-6 digits and capitals,
    noise dots, a curve, warped glyphs), drawn by the `captcha` package; made once under benchmarks/out."""
    import random

    from captcha.image import ImageCaptcha

    directory = OUT / name
    annotations = directory / "annotations.txt"
    tfrecords = directory / "data.tfrecords"
    if not tfrecords.exists():
        (directory / "images").mkdir(parents=True, exist_ok=True)
        random.seed(seed)  # the captcha package draws with the module-level generator
        drawer = ImageCaptcha(width=160, height=60)
        alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        lines = []
        for number in range(count):
            text = "".join(random.choice(alphabet) for _ in range(random.randint(4, 6)))
            path = directory / "images" / f"{number:05d}.png"
            drawer.generate_image(text).save(path)
            lines.append(f"{path} {text}\n")
        annotations.write_text("".join(lines), encoding="utf-8")
        subprocess.run([sys.executable, "-m", "aocr", "dataset", str(annotations), str(tfrecords),
                        "--log-path", ""], check=True)
    return annotations, tfrecords


def write_json(name: str, results: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def print_table(rows: list[tuple[str, str, str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
