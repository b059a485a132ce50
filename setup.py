from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
setup(
    name="aocr",
    version="1.0.0",
    description="Attention-based OCR with TensorFlow: datasets, training, testing, export and serving",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["aocr", "aocr.*"]),
    python_requires=">=3.10",
    install_requires=[line for line in (here / "requirements.txt").read_text().splitlines() if line.strip()],
    extras_require={"test": ["pytest", "ruff"]},
    entry_points={"console_scripts": ["aocr=aocr.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
