import re
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
# The version lives in aocr/__init__.py alone; read, not imported (importing aocr needs its requirements).
version = re.search(r'^__version__ = "([^"]+)"$', (here / "aocr" / "__init__.py").read_text(encoding="utf-8"),
                    re.MULTILINE).group(1)
setup(
    name="aocr",
    version=version,
    description="Attention-based OCR with TensorFlow: datasets, training, testing, export and serving",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["aocr", "aocr.*"]),
    package_data={"aocr.inference": ["templates/*.html"]},
    python_requires=">=3.10",
    install_requires=[line for line in (here / "requirements.txt").read_text().splitlines() if line.strip()],
    # gRPC serving: tensorflow-serving-api releases track TensorFlow's (2.21 needs TensorFlow 2.21), so pin it to
    # your TensorFlow's minor version if pip would otherwise move TensorFlow.
    extras_require={"test": ["pytest", "pytest-xdist", "filelock", "ruff", "import-linter", "hypothesis", "grpcio",
                             "tensorflow-serving-api"],
                    "grpc": ["grpcio", "tensorflow-serving-api"],
                    "docs": ["mkdocs", "mkdocs-material", "mkdocstrings[python]"]},
    entry_points={"console_scripts": ["aocr=aocr.cli:run_command"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
