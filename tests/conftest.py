"""Shared fixtures: small generated image sets, their TFRecords, and a tiny trained model.

Everything is real: PNG files, TFRecords written by `aocr dataset`, checkpoints written by
`aocr train`, all through the command line as a user runs it.
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from aocr.cli import main
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


@pytest.fixture
def aocr_main(capsys: pytest.CaptureFixture) -> Callable[..., subprocess.CompletedProcess]:
    """The real command line run in this process, with no TensorFlow start-up per call and no log file;
    it returns what run_aocr returns. Paths must be absolute: the process's directory is pytest's."""
    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        status = main([*args, "--log-path", ""])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["aocr", *args], status, out, err)
    return run


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


def image_set_at(directory: Path, count: int, seed: int) -> ImageSet:
    """The paths and labels of the set make_image_set writes into `directory`; nothing is written."""
    rng = random.Random(seed)
    labels = [synthetic.random_text(rng, 2, 4, "0123456789") for _ in range(count)]
    images = [directory / "images" / f"{number:04d}.png" for number in range(count)]
    return ImageSet(directory, images, labels, directory / "annotations.txt", directory / "data.tfrecords")


def make_image_set(directory: Path, count: int, seed: int) -> ImageSet:
    image_set = image_set_at(directory, count, seed)
    render_images(directory / "images", image_set.labels, seed)
    write_annotations(image_set.annotations, list(zip(image_set.images, image_set.labels, strict=True)))
    result = run_aocr("dataset", str(image_set.annotations), str(image_set.tfrecords), "--save-filename",
                      cwd=directory)
    assert result.returncode == 0, result.stderr
    return image_set


def built_once(directory: Path, build: Callable[[Path], object]) -> Path:
    """`directory`, filled by `build` for the first test process that asks; with pytest-xdist the
    other workers wait for it under a file lock instead of building their own copy."""
    with FileLock(f"{directory}.lock", timeout=900):
        if not (directory / ".built").exists():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            build(directory)
            (directory / ".built").touch()
    return directory


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every pytest-xdist worker of this run sees (the run's own base folder without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def digits_set(shared_dir: Path) -> ImageSet:
    """200 clean images of 2-4 digits, with TFRecords."""
    directory = built_once(shared_dir / "digits", lambda target: make_image_set(target, 200, seed=0))
    return image_set_at(directory, 200, seed=0)


def train_tiny_model(tfrecords: Path, model_dir: Path) -> None:
    result = run_aocr("train", str(tfrecords), "--model-dir", str(model_dir), *TINY_SHAPE, "--decoder", "attention",
                      "--batch-size", "16", "--max-steps", TRAINED_STEPS, "--steps-per-checkpoint", "100",
                      "--augment", "none", "--seed", "1", cwd=model_dir.parent)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="session")
def trained_model(digits_set: ImageSet, shared_dir: Path) -> Path:
    """A tiny model with both heads (the attention decoder and the CTC head) trained on digits_set until it reads
    it well (its validation images from step 200 on)."""
    directory = built_once(shared_dir / "model",
                           lambda target: train_tiny_model(digits_set.tfrecords, target / "checkpoints"))
    return directory / "checkpoints"


TRAINED_STEPS = "300"


def example_pixels_client():
    """examples/pixels_client.py, which the signatures reference prints, imported as a module."""
    path = Path(__file__).resolve().parent.parent / "examples" / "pixels_client.py"
    spec = importlib.util.spec_from_file_location("pixels_client", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def params_limit(params: dict) -> int:
    """The widest an encoded image is read at (the export caps it): 4 x ceil(max_width / max_height x height / 4)."""
    return 4 * math.ceil(math.ceil(params["max_width"] / params["max_height"] * params["image_height"]) / 4)
