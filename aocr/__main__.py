"""`python -m aocr ...`: the same program as the `aocr` console script."""

import sys

from aocr.cli import main

if __name__ == "__main__":
    sys.exit(main())
