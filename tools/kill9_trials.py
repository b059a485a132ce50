"""Kill `aocr train` with SIGKILL at random moments, some of them during a save, and check each time that
the model dir still loads in `aocr test` and that training resumes from its last checkpoint.

    python tools/kill9_trials.py [--trials 20] [--seed 0] [--work-dir DIR]

One model dir is trained on 200 rendered images with a checkpoint every 5 steps and a
validation split, so that a save also writes the best checkpoint. Each trial resumes
training, kills it either at a random time (1-8 s into training) or just after a "step N:
loss" line, while its save, validation and best copy run, then runs `aocr test` on the dir.
A trial passes when the next training resumes from a checkpoint no older than the last
"saved" line before the kill, and `aocr test` loads the dir and scores it (or, when the kill
came before the first save finished, says there is no checkpoint yet, without a traceback).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TRAIN_FLAGS = ["--max-width", "120", "--max-height", "32", "--max-prediction", "4", "--attn-num-hidden", "32",
               "--attn-num-layers", "1", "--batch-size", "8", "--steps-per-checkpoint", "5",
               "--validation-split", "0.1", "--max-steps", "1000000", "--log-path", ""]


def aocr(*args: str) -> list[str]:
    return [sys.executable, "-m", "aocr", *args]


def make_dataset(work: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from aocr.data import synthetic

    annotations = synthetic.make_dataset(work / "images", 200, seed=0, min_length=2, max_length=4, distort=False)
    records = work / "data.tfrecords"
    subprocess.run(aocr("dataset", str(annotations), str(records), "--log-path", ""), check=True,
                   capture_output=True, cwd=work)
    return records


class Training:
    """One `aocr train` process whose stderr lines are collected as they come."""

    def __init__(self, records: Path, model: Path) -> None:
        self.process = subprocess.Popen(aocr("train", str(records), "--model-dir", str(model), *TRAIN_FLAGS),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                        env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float, after: int = 0) -> int | None:
        """Index of the first line from `after` on that matches, or None on timeout or exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index in range(after, len(self.lines)):
                if re.search(pattern, self.lines[index]):
                    return index
            if self.process.poll() is not None:
                return None
            time.sleep(0.01)
        return None

    def steps(self, pattern: str) -> list[int]:
        return [int(m.group(1)) for line in self.lines if (m := re.search(pattern, line))]


def kill_at_random(training: Training, rng: random.Random) -> str:
    """SIGKILL at a random time during training, or just as a save begins; says which."""
    start = training.wait_for(r"training from step", 300)
    if start is None:
        raise SystemExit("training did not start:\n" + "".join(training.lines))
    if rng.random() < 0.5:
        delay = rng.uniform(1, 8)
        time.sleep(delay)
        moment = f"{delay:.1f} s into training"
    else:
        found = training.wait_for(r"step \d+: loss", 120, after=start)
        delay = rng.uniform(0, 0.3)
        time.sleep(delay)
        moment = f"{delay * 1000:.0f} ms after a checkpoint's 'step N' line (its save)" if found else "no save seen"
    training.process.send_signal(signal.SIGKILL)
    training.process.wait()
    time.sleep(0.1)
    return moment


def test_loads(records: Path, model: Path, saved_before: bool) -> str | None:
    """None when `aocr test` loads and scores the dir, or, killed before any save had finished
    (saved_before False), says in one line that there is no checkpoint yet; else what went wrong."""
    result = subprocess.run(aocr("test", str(records), "--model-dir", str(model), "--log-path", ""),
                            capture_output=True, text=True, timeout=600)
    if result.returncode == 0 and "word accuracy" in result.stderr:
        return None
    if not saved_before and "no checkpoint" in result.stderr and "Traceback" not in result.stderr:
        return None
    return f"aocr test exit {result.returncode}: {result.stderr.strip()[-400:]}"


def start_resumed(records: Path, model: Path) -> tuple[Training, int]:
    """A training process, once it has said where it starts; and the checkpoint step it resumed from (0: none)."""
    training = Training(records, model)
    if training.wait_for(r"resumed from|training from step 0", 300) is None:
        raise SystemExit("training did not start:\n" + "".join(training.lines))
    return training, max(training.steps(r"resumed from .*ckpt-(\d+)") or [0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default=None, help="keep the model and data here (default: a temporary dir)")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    failures = last_saved = 0
    with tempfile.TemporaryDirectory() as temp:
        work = Path(args.work_dir or temp)
        work.mkdir(parents=True, exist_ok=True)
        records, model = make_dataset(work), work / "model"
        training, _ = start_resumed(records, model)
        for trial in range(1, args.trials + 1):
            moment = kill_at_random(training, rng)
            last_saved = max([last_saved, *training.steps(r"saved .*model\.ckpt-(\d+)$")])
            problem = test_loads(records, model, last_saved > 0)
            training, resumed = start_resumed(records, model)
            if problem is None and resumed < last_saved:
                problem = f"resumed from step {resumed}, older than the last save, {last_saved}"
            failures += problem is not None
            print(f"trial {trial:2d}: killed {moment}; last 'saved' line: step {last_saved}; aocr test "
                  f"{'loads the dir' if problem is None else 'FAILED'}; training resumed from step {resumed}"
                  + (f"  FAILED: {problem}" if problem else ""), flush=True)
        training.process.kill()
        training.process.wait()
    print(f"{args.trials - failures} of {args.trials} trials passed", flush=True)
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
