"""Peak resident memory of `aocr predict`, `aocr dataset` and `aocr serve` on hostile images
(tools/hostile_images.py).

    python benchmarks/hostile_memory.py [--model-dir DIR]

Without --model-dir a tiny model is trained for two steps first (the figures are about
memory, not accuracy). Each hostile or odd file is given to `aocr predict` alone, next to a
plain image, and all of them together to `aocr dataset`; the table gives each run's peak
resident memory (the child's ru_maxrss), exit status, and whether the file was named as skipped.
Then the model is exported and served by `aocr serve` on 127.0.0.1, which is sent a plain image,
each file in turn (one REST request each) and the plain image again; the second table gives the
server's status code for each and its peak resident memory (VmHWM) after it, against after the first
plain image. Writes benchmarks/out/hostile_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, aocr, export_model, memory_mib, post, predict_body, start_server, tiny_model, write_json  # noqa: E402

sys.path.insert(0, str(ROOT))

from tools import hostile_images  # noqa: E402


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


def serve_peaks(model: Path, plain: Path, files: list[Path], work: Path) -> list[dict]:
    """`aocr serve` on the exported model: the plain image, each file, the plain image again, one request
    each; the status, the error's first words and the server's VmHWM and VmRSS (MiB) after each."""
    process, url = start_server(export_model(model, work / "export"), 0, [])
    rows = []
    try:
        for path in [plain, *files, plain]:
            status, answer, _ = post(url, predict_body(path.read_bytes()))
            error = json.loads(answer).get("error", "") if status != 200 else ""
            rows.append({"file": path.name, "status": status, "error": error[:90],
                         "peak_mib": memory_mib(process.pid, "VmHWM"), "rss_mib": memory_mib(process.pid, "VmRSS")})
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    return rows


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
        figures: dict = {"predict": []}
        for path in [None, *files]:
            extra = [str(path)] if path else []
            result, peak = run_measured(aocr("predict", str(plain), *extra, "--model-dir", str(model), "--log-path",
                                             ""))
            named = "yes" if path and f"{path}: " in result.stderr and "skipped" in result.stderr else "no"
            label = f"predict {path.name if path else '(plain image only)'}"
            print(f"{label:48} {peak:9.0f} {result.returncode:5d}  {named}")
            figures["predict"].append({"file": path.name if path else None, "peak_mib": peak,
                                       "exit": result.returncode, "named": named})
        annotations = work / "all.txt"
        annotations.write_text("".join(f"{p} 42\n" for p in [plain, *files]))
        result, peak = run_measured(aocr("dataset", str(annotations), str(work / "all.tfrecords"), "--log-path", ""))
        named = sum(f"{p}: " in result.stderr for p in files)
        print(f"{'dataset (all of them)':48} {peak:9.0f} {result.returncode:5d}  {named} files named")
        figures["dataset"] = {"peak_mib": peak, "exit": result.returncode, "named": named}
        served = serve_peaks(model, plain, files, work)
    base = served[0]["peak_mib"]
    print(f"\n{'aocr serve, one request each':30} {'status':>6} {'peak MiB':>9} {'+ MiB':>6} {'RSS MiB':>8}  error")
    for number, row in enumerate(served):
        label = row["file"] + (" (again)" if number == len(served) - 1 else "")
        print(f"{label:30} {row['status']:6d} {row['peak_mib']:9.0f} {row['peak_mib'] - base:+6.0f} "
              f"{row['rss_mib']:8.0f}  {row['error']}")
    figures["serve"] = served
    print(f"\nwrote {write_json('hostile_memory.json', figures)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
