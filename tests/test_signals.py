"""Signals that always work: `aocr train` is made to block inside TensorFlow by a FIFO with no writer where
it reads its records, and must still stop at once on a second signal (or on a first one when there is
nothing to save), saying why, with the exit status of a forced stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tensorflow as tf

from aocr.core.signals import forced_exit_status
from tests.conftest import TINY_SHAPE

# A forced stop must come this soon after its signal (the process does nothing but log and exit).
PROMPT_SECONDS = 5


class Lines(threading.Thread):
    """Collects a stream's lines as they come, so a test can wait for one without blocking on the stream."""

    def __init__(self, stream: object) -> None:
        super().__init__(daemon=True)
        self.stream, self.lines = stream, []

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            if not self.is_alive():
                return False
            time.sleep(0.05)
        return False

    @property
    def text(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def few_records(digits_set, tmp_path) -> bytes:
    """The bytes of a TFRecords file of 8 records: an epoch is two steps of 4."""
    path = tmp_path / "few.tfrecords"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for number, raw in enumerate(tf.compat.v1.io.tf_record_iterator(str(digits_set.tfrecords))):
            if number == 8:
                break
            writer.write(raw)
    return path.read_bytes()


def start_training(records: Path, cwd: Path) -> tuple[subprocess.Popen, Lines]:
    process = subprocess.Popen(
        [sys.executable, "-m", "aocr", "train", str(records), "--model-dir", str(cwd / "m"), *TINY_SHAPE,
         "--batch-size", "4", "--validation-split", "0", "--steps-per-checkpoint", "100000", "--log-path", ""],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines = Lines(process.stderr)
    lines.start()
    return process, lines


def assert_forced_stop(process: subprocess.Popen, lines: Lines, sig: signal.Signals, message: str) -> None:
    """Send `sig` and check that the process ends within PROMPT_SECONDS with the forced-stop status and `message`."""
    process.send_signal(sig)
    try:
        process.wait(timeout=PROMPT_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {PROMPT_SECONDS} s after {sig.name}: {lines.text}")
    lines.join(timeout=5)
    assert process.returncode == forced_exit_status(sig) == 128 + sig, lines.text
    assert message in lines.text and "Traceback" not in lines.text, lines.text


@contextlib.contextmanager
def killed_at_the_end(process: subprocess.Popen) -> Iterator[None]:
    try:
        yield
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def loads_tensorflow(process: subprocess.Popen, timeout: float) -> bool:
    """Whether the process comes to map TensorFlow's native library (it is importing TensorFlow) within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError):
            if "tensorflow" in Path(f"/proc/{process.pid}/maps").read_text():
                return True
        time.sleep(0.01)
    return False


def waits_to_open_a_fifo(process: subprocess.Popen, timeout: float) -> bool:
    """Whether one of the process's threads comes to wait in the kernel for a FIFO's writer (Linux's
    /proc/PID/task/*/wchan) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for wchan in Path(f"/proc/{process.pid}/task").glob("*/wchan"):
            with contextlib.suppress(OSError):
                if wchan.read_text() == "wait_for_partner":
                    return True
        time.sleep(0.05)
    return False


def block_reads(path: Path) -> None:
    """Put a FIFO without a writer where `path` was: whoever opens it next waits in the kernel."""
    fifo = path.with_name(path.name + ".fifo")
    os.mkfifo(fifo)
    os.replace(fifo, path)


def test_a_second_signal_stops_training_blocked_inside_tensorflow(few_records, tmp_path):
    records = tmp_path / "records"
    records.write_bytes(few_records)
    process, lines = start_training(records, tmp_path)
    with killed_at_the_end(process):
        assert lines.wait_for("training from step", 300), lines.text
        block_reads(records)  # the input pipeline reopens the records each epoch: a step blocks inside TensorFlow
        time.sleep(3)
        process.send_signal(signal.SIGINT)
        assert lines.wait_for("SIGINT received: saving a checkpoint and stopping", PROMPT_SECONDS), lines.text
        time.sleep(1)
        assert process.poll() is None, "the step was expected to be blocked: " + lines.text
        assert_forced_stop(process, lines, signal.SIGTERM, "SIGTERM received again: stopping at once, without saving")


def test_a_first_signal_before_training_stops_at_once_even_inside_tensorflow(tmp_path):
    records = tmp_path / "records"
    os.mkfifo(records)
    process, lines = start_training(records, tmp_path)  # reading the records blocks in open()
    with killed_at_the_end(process):
        assert waits_to_open_a_fifo(process, 300), "never blocked on the records: " + lines.text
        assert_forced_stop(process, lines, signal.SIGINT, "SIGINT received: stopping at once")


def test_ctrl_c_while_python_and_tensorflow_load_is_one_line_and_status_130(tmp_path):
    """A Ctrl-C before the command has started (the imports take seconds) exits 130 with one line, no traceback."""
    process, lines = start_training(tmp_path / "missing.tfrecords", tmp_path)
    with killed_at_the_end(process):
        assert loads_tensorflow(process, 60), lines.text
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        lines.join(timeout=5)
    assert process.returncode == 130, lines.text
    assert "Traceback" not in lines.text and "KeyboardInterrupt" not in lines.text, lines.text
    assert "interrupted" in lines.text or "SIGINT received" in lines.text, lines.text
