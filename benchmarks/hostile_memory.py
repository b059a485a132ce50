"""Peak resident memory of `aocr predict` and `aocr dataset` on hostile images (tools/hostile_images.py).

    python benchmarks/hostile_memory.py [--model-dir DIR]

Without --model-dir a tiny model is trained for two steps first (the figures are about
memory, not accuracy). Each hostile or odd file is given to `aocr predict` alone, next to a
plain image, and all of them together to `aocr dataset`; the table gives each run's peak
resident memory (the child's ru_maxrss), exit status, and whether the file was named as skipped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import hostile_images  # noqa: E402

TINY = ["--max-width", "120", "--max-height", "32", "--max-prediction", "4", "--attn-num-hidden", "32",
        "--attn-num-layers", "1"]


def run_measured(command: list[str], cwd: Path | str | None = None,
                 timeout: float = 600) -> tuple[subprocess.CompletedProcess, float]:
    """Run a command; returns its completed process and the peak resident memory of the child in MiB."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err,
                                   env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            if process.returncode is None and process.poll() is None:
                process.kill()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(command, process.returncode, out.read().decode(errors="replace"),
                                             err.read().decode(errors="replace"))
    return result, usage.ru_maxrss / 1024


def aocr(*args: str) -> list[str]:
    return [sys.executable, "-m", "aocr", *args]


def tiny_model(work: Path) -> Path:
    """A model trained for two steps on a few plain images."""
    plain = hostile_images.encode(hostile_images.text_image(), "PNG")
    rows = []
    for number in range(8):
        path = work / f"plain-{number}.png"
        path.write_bytes(plain)
        rows.append(f"{path} 42\n")
    (work / "plain.txt").write_text("".join(rows))
    subprocess.run(aocr("dataset", str(work / "plain.txt"), str(work / "plain.tfrecords")), check=True,
                   capture_output=True)
    model = work / "model"
    subprocess.run(aocr("train", str(work / "plain.tfrecords"), "--model-dir", str(model), *TINY, "--batch-size",
                        "4", "--max-steps", "2", "--validation-split", "0", "--log-path", ""),
                   check=True, capture_output=True)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        model = Path(args.model_dir) if args.model_dir else tiny_model(work)
        files = hostile_images.write_all(work / "hostile")
        plain = work / "plain.png"
        plain.write_bytes(hostile_images.encode(hostile_images.text_image(), "PNG"))
        print(f"{'run':48} {'peak MiB':>9} {'exit':>5}  skipped and named")
        for path in [None, *files]:
            extra = [str(path)] if path else []
            result, peak = run_measured(aocr("predict", str(plain), *extra, "--model-dir", str(model), "--log-path",
                                             ""))
            named = "yes" if path and f"{path}: " in result.stderr and "skipped" in result.stderr else "no"
            label = f"predict {path.name if path else '(plain image only)'}"
            print(f"{label:48} {peak:9.0f} {result.returncode:5d}  {named}")
        annotations = work / "all.txt"
        annotations.write_text("".join(f"{p} 42\n" for p in [plain, *files]))
        result, peak = run_measured(aocr("dataset", str(annotations), str(work / "all.tfrecords"), "--log-path", ""))
        named = sum(f"{p}: " in result.stderr for p in files)
        print(f"{'dataset (all of them)':48} {peak:9.0f} {result.returncode:5d}  {named} files named")
    return 0


if __name__ == "__main__":
    sys.exit(main())
