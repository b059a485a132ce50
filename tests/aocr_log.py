"""Capturing the "aocr" logger's lines in-process, whether or not an earlier in-process `aocr.cli.main`
call stopped that logger from propagating to the root logger.

A test module makes it a fixture with `aocr_log = pytest.fixture(name="aocr_log")(capture_aocr_log)`.
"""

import logging
from collections.abc import Iterator

import pytest


def capture_aocr_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog, attached to the "aocr" logger at INFO for the duration of the test."""
    logger = logging.getLogger("aocr")
    saved = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # caplog's handler is attached here; propagating would record each line twice
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.level, logger.propagate = saved
