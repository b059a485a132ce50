"""How long `aocr train` takes to exit after its last save: at the end of training, and after a Ctrl-C.

    python benchmarks/exit_time.py [--dataset TFRECORDS] [--epochs 2] [--interrupt-after 30]

By default it trains on the README's sample (datasets/annotations-training.txt, written to
TFRecords in a temporary folder) with the README's flags and few epochs, then again with a
SIGINT some seconds into training. For each run it prints the seconds from the last "saved"
line to the "stopped at step" line (validation of the best checkpoint and session close) and
to the process's exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_FLAGS = ["--max-width", "200", "--max-height", "40", "--batch-size", "32"]


def timed_lines(process: subprocess.Popen) -> list[tuple[float, str]]:
    """(monotonic time of arrival, line) of the process's stderr, collected in a thread as they come."""
    lines: list[tuple[float, str]] = []

    def read() -> None:
        for line in process.stderr:
            lines.append((time.monotonic(), line))

    threading.Thread(target=read, daemon=True).start()
    return lines


def last_time(lines: list[tuple[float, str]], text: str) -> float | None:
    found = [at for at, line in lines if text in line]
    return found[-1] if found else None


def run_once(dataset: str, work: Path, epochs: int, interrupt_after: float | None) -> dict:
    """One training run; the seconds from its last save to its 'stopped' line and to its exit."""
    model = work / f"model-{time.monotonic_ns()}"
    process = subprocess.Popen([sys.executable, "-m", "aocr", "train", dataset, "--model-dir", str(model),
                                *README_FLAGS, "--num-epoch", str(epochs), "--log-path", ""],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines = timed_lines(process)
    if interrupt_after is not None:
        while last_time(lines, "training from step") is None and process.poll() is None:
            time.sleep(0.1)
        time.sleep(interrupt_after)
        process.send_signal(signal.SIGINT)
    process.wait()
    exited = time.monotonic()
    time.sleep(0.2)  # the reader thread's last lines
    saved, stopped = last_time(lines, " saved "), last_time(lines, "stopped at step")
    if saved is None:
        raise SystemExit("no 'saved' line:\n" + "".join(line for _, line in lines))
    return {"exit status": process.returncode, "saved->stopped": None if stopped is None else stopped - saved,
            "saved->exit": exited - saved}


def readme_dataset(work: Path) -> str:
    output = work / "training.tfrecords"
    subprocess.run([sys.executable, "-m", "aocr", "dataset", "datasets/annotations-training.txt", str(output),
                    "--log-path", ""], check=True, capture_output=True, cwd=ROOT)
    return str(output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None, help="TFRecords (default: the README's sample)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--interrupt-after", type=float, default=30.0,
                        help="seconds of training before the SIGINT of the second run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        dataset = args.dataset or readme_dataset(work)
        for name, interrupt in (("end of training", None), (f"SIGINT after {args.interrupt_after:g} s",
                                                            args.interrupt_after)):
            figures = run_once(dataset, work, args.epochs if interrupt is None else 1000, interrupt)
            text = ", ".join(f"{k} {v:.2f} s" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
            print(f"{name}: {text}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
