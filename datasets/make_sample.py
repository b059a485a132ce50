"""Make the bundled sample set: rendered upper-case alphanumeric strings, 3-8 characters.

Run from the repository root: `python datasets/make_sample.py`. Deterministic for a given
Pillow version and set of installed fonts (the DejaVu fonts when present, and Pillow's own).
"""

from pathlib import Path

from aocr.data.synthetic import make_dataset

HERE = Path("datasets")

if __name__ == "__main__":
    make_dataset(HERE / "training", 1000, seed=1, annotation_name="../annotations-training.txt")
    make_dataset(HERE / "testing", 100, seed=2, annotation_name="../annotations-testing.txt")
