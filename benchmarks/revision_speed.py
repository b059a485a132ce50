"""Training images/s and prediction ms/image of this working tree beside an earlier revision, measured
alternately in the same run (so a machine that drifts moves both alike). Prints a table and writes
benchmarks/out/revision_speed.json.

    python benchmarks/revision_speed.py                    # against 8414a72, before the trainer restructuring
    python benchmarks/revision_speed.py --baseline REV --rounds 3

Both revisions train the same rendered strings with the same flags (the benchmark's shape, batch 65,
no validation) from a fresh model, and both predict the same images with one model trained here
(the checkpoint format did not change). Training speed is the median of the "images/s" log lines
after the first interval; prediction is the best round of one Recognizer stream, as model_benchmark.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHAPE_FLAGS, machine, print_table, rendered_set, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RATE_LINE = re.compile(r"step (\d+): .* ([\d.]+) images/s")
# Run inside the revision's own package: load the model and time a stream of images, best of `rounds`.
PREDICT_PROGRAM = """
import json, sys, time
try:
    from aocr.core import params as model_params
    from aocr.inference.recognizer import Recognizer
except ImportError:  # a revision from before aocr.core and aocr.inference
    from aocr import params as model_params
    from aocr.recognizer import Recognizer
model_dir, paths, rounds = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
data = [open(p, "rb").read() for p in paths]
recognizer = Recognizer.load(model_dir, model_params.load(model_dir))
recognizer.recognize(data[:65], 65)
best = float("inf")
for _ in range(rounds):
    start = time.perf_counter()
    recognizer.recognize(data, 65)
    best = min(best, (time.perf_counter() - start) / len(data))
print(json.dumps({"ms_per_image": 1000 * best}))
"""


def checkout(revision: str, work: Path) -> Path:
    """The revision's files in work/REVISION (git archive: no worktree bookkeeping left behind)."""
    target = work / revision
    if not (target / "aocr").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def median_rate(source: Path, tfrecords: Path, work: Path, flags: list[str]) -> float:
    """Median images/s of a fresh `aocr train` run from `source` with `flags`, after its first logged interval."""
    command = [sys.executable, "-m", "aocr", "train", str(tfrecords), "--model-dir", str(work / "speed-model"),
               "--no-resume", "--log-path", "", *flags]
    result = subprocess.run(command, cwd=work, capture_output=True, text=True, env=child_env(source), timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"training from {source} failed:\n{result.stderr[-2000:]}")
    rates = [float(match.group(2)) for match in RATE_LINE.finditer(result.stderr)]
    return statistics.median(rates[1:])


def training_rate(source: Path, tfrecords: Path, work: Path, steps: int, extra: list[str]) -> float:
    """The benchmark's shape at batch 65 for `steps` steps (see median_rate)."""
    return median_rate(source, tfrecords, work, [*SHAPE_FLAGS, "--batch-size", "65", "--max-steps", str(steps),
                                                 "--steps-per-checkpoint", str(steps // 5), *extra])


def prediction_ms(source: Path, model_dir: Path, images: list[Path], rounds: int) -> float:
    result = subprocess.run([sys.executable, "-c", PREDICT_PROGRAM, str(model_dir), ",".join(map(str, images)),
                             str(rounds)], cwd=model_dir.parent, capture_output=True, text=True, env=child_env(source),
                            timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"prediction from {source} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["ms_per_image"]


def child_env(source: Path) -> dict[str, str]:
    """The environment that imports aocr from `source` (the children run outside the repository, so the
    current directory does not shadow it, and PYTHONPATH comes before the editable install)."""
    return dict(os.environ, PYTHONPATH=str(source), TF_CPP_MIN_LOG_LEVEL="2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="8414a72", help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of each measurement")
    parser.add_argument("--steps", type=int, default=100, help="training steps per run")
    args = parser.parse_args()
    _, train_records = rendered_set("rendered-train-6000", 6000, seed=11)
    test_annotations, _ = rendered_set("rendered-test-500", 500, seed=12)
    predict_images = sorted(test_annotations.parent.rglob("*.png"))[:300]
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        sources = {"baseline": checkout(args.baseline, work), "current": ROOT}
        rates: dict[str, list[float]] = {"baseline": [], "current": [], "current, --augment light": []}
        for _ in range(args.rounds):
            rates["baseline"].append(training_rate(sources["baseline"], train_records, work, args.steps, []))
            rates["current"].append(training_rate(ROOT, train_records, work, args.steps,
                                                  ["--augment", "none", "--validation-split", "0"]))
            rates["current, --augment light"].append(training_rate(ROOT, train_records, work, args.steps,
                                                                   ["--validation-split", "0"]))
        model_dir = work / "speed-model"  # the last run's model serves both revisions' predictions
        predict = {name: [prediction_ms(source, model_dir, predict_images, 3) for _ in range(args.rounds)]
                   for name, source in sources.items()}
    results = {"machine": machine(), "baseline": args.baseline, "training_images_per_second": rates,
               "prediction_ms_per_image": predict}
    rows = [("measure", "revision", "best of rounds")]
    rows += [("training images/s (batch 65)", name, f"{max(values):.1f}") for name, values in rates.items()]
    rows += [("prediction ms/image (batch 65)", name, f"{min(values):.2f}") for name, values in predict.items()]
    print_table(rows)
    print(f"written to {write_json('revision_speed.json', results)}")


if __name__ == "__main__":
    main()
