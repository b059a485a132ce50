"""Shared fixtures: small generated image sets, their TFRecords, and a tiny trained model.

Everything is real: PNG files, TFRecords written by `aocr dataset`, checkpoints written by
`aocr train`, all through the command line as a user runs it.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from aocr.data import synthetic

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

# A tiny model and a tiny task, so the suite trains in well under two minutes.
TINY_SHAPE = ["--max-width", "120", "--max-height", "32", "--max-prediction", "4",
              "--attn-num-hidden", "64", "--attn-num-layers", "2"]


def run_aocr(*args: str, cwd: Path | str | None = None, stdin: str | None = None,
             timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real command line in a child process, as a user would."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "aocr", *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=timeout, env=env)


def render_images(directory: Path, texts: list[str], seed: int = 0) -> list[Path]:
    """One clean PNG per text, in one font: an easy task for a tiny model."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    font = synthetic.load_font(FONT if os.path.exists(FONT) else None, 24)
    paths = []
    for number, text in enumerate(texts):
        path = directory / f"{number:04d}.png"
        synthetic.render(text, rng, font, distort=False).save(path)
        paths.append(path)
    return paths


def write_annotations(path: Path, rows: list[tuple[Path | str, str]]) -> Path:
    path.write_text("".join(f"{p} {label}\n" for p, label in rows), encoding="utf-8")
    return path


@dataclass
class ImageSet:
    directory: Path
    images: list[Path]
    labels: list[str]
    annotations: Path
    tfrecords: Path


def make_image_set(directory: Path, count: int, seed: int) -> ImageSet:
    rng = random.Random(seed)
    labels = [synthetic.random_text(rng, 2, 4, "0123456789") for _ in range(count)]
    images = render_images(directory / "images", labels, seed)
    annotations = write_annotations(directory / "annotations.txt", list(zip(images, labels, strict=True)))
    tfrecords = directory / "data.tfrecords"
    result = run_aocr("dataset", str(annotations), str(tfrecords), "--save-filename", cwd=directory)
    assert result.returncode == 0, result.stderr
    return ImageSet(directory, images, labels, annotations, tfrecords)


@pytest.fixture(scope="session")
def digits_set(tmp_path_factory: pytest.TempPathFactory) -> ImageSet:
    """200 clean images of 2-4 digits, with TFRecords."""
    return make_image_set(tmp_path_factory.mktemp("digits"), 200, seed=0)


@pytest.fixture(scope="session")
def trained_model(digits_set: ImageSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained on digits_set until it reads it well (a few hundred steps)."""
    model_dir = tmp_path_factory.mktemp("model") / "checkpoints"
    result = run_aocr("train", str(digits_set.tfrecords), "--model-dir", str(model_dir), *TINY_SHAPE,
                      "--batch-size", "16", "--max-steps", TRAINED_STEPS, "--steps-per-checkpoint", "100",
                      "--seed", "1", cwd=model_dir.parent)
    assert result.returncode == 0, result.stderr
    return model_dir


TRAINED_STEPS = "600"
