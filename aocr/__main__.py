"""`python -m aocr ...`: the same program as the `aocr` console script."""

from aocr.cli import run_command

if __name__ == "__main__":
    run_command()
