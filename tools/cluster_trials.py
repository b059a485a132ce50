"""Run a 1 ps + chief + 1 worker training cluster on 127.0.0.1 several times and report how each process ends.

    python tools/cluster_trials.py [--runs 20] [--kill-worker-after 0] [-- extra train flags]

Each run trains a fresh tiny model on 64 rendered images (--num-epoch 2, --batch-size 16,
--steps-per-checkpoint 2, the case of issue 16) and prints, per process, its exit status and
the seconds from the run's last step (the chief's last "saved" line) to the process's exit.
A run passes when every process exits 0 within --within seconds of the last step. A process
still running --hang-after seconds after the last step is reported as hung and killed.

With --kill-worker-after S, the worker is killed with SIGKILL S seconds after training starts
instead: the chief must notice within --step-timeout, save, and exit non-zero naming the task;
the figures are then the chief's exit time after the kill and its message.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.local_cluster import cluster_spec, task_command  # noqa: E402

TRAIN_FLAGS = ["--max-width", "120", "--max-height", "32", "--max-prediction", "4", "--attn-num-hidden", "32",
               "--attn-num-layers", "1", "--num-epoch", "2", "--batch-size", "16", "--steps-per-checkpoint", "2",
               "--validation-split", "0"]
TASKS = (("ps", 0), ("worker", 0), ("worker", 1))  # worker 0 is the chief


@dataclass
class Task:
    name: str
    process: subprocess.Popen
    lines: list[tuple[float, str]] = field(default_factory=list)
    exited: float | None = None

    def read(self, log: Path) -> None:
        with log.open("w") as out:
            for line in self.process.stderr:
                self.lines.append((time.monotonic(), line))
                out.write(line)
                out.flush()

    def last(self, text: str) -> float | None:
        found = [at for at, line in self.lines if text in line]
        return found[-1] if found else None


def make_dataset(work: Path) -> Path:
    """64 rendered images of 2-4 digits, as TFRecords."""
    from aocr.data import synthetic

    annotations = synthetic.make_dataset(work / "images", 64, seed=0, min_length=2, max_length=4, distort=False)
    records = work / "data.tfrecords"
    subprocess.run([sys.executable, "-m", "aocr", "dataset", str(annotations), str(records), "--log-path", ""],
                   check=True, capture_output=True, cwd=work)
    return records


def start_cluster(records: Path, model: Path, extra: list[str], logs: Path) -> list[Task]:
    cluster = cluster_spec(1, 2)
    tasks = []
    for job, index in TASKS:
        command, env = task_command(cluster, job, index, [str(records), "--model-dir", str(model), *TRAIN_FLAGS,
                                                          *extra])
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True)
        task = Task(f"{job}-{index}", process)
        threading.Thread(target=task.read, args=(logs / f"{task.name}.log",), daemon=True).start()
        tasks.append(task)
    return tasks


def wait_all(tasks: list[Task], deadline: float, reference: Callable[[], float | None]) -> None:
    """Wait for every task to exit; kill those still running `deadline` seconds after reference() (or 15 min)."""
    started = time.monotonic()
    while any(t.exited is None for t in tasks):
        for task in tasks:
            if task.exited is None and task.process.poll() is not None:
                task.exited = time.monotonic()
        mark = reference()
        limit = (mark + deadline) if mark is not None else started + 900
        if time.monotonic() > limit:
            for task in tasks:
                if task.exited is None:
                    task.process.send_signal(signal.SIGKILL)
                    task.process.wait()
            break
        time.sleep(0.05)
    time.sleep(0.3)  # the reader threads' last lines


def one_run(number: int, records: Path, work: Path, args: argparse.Namespace) -> bool:
    model = work / f"run-{number}" / "m"
    logs = model.parent / "logs"
    logs.mkdir(parents=True)
    tasks = start_cluster(records, model, args.train_flags, logs)
    chief, worker = tasks[1], tasks[2]
    killed_at = None
    if args.kill_worker_after:
        while chief.last("training from step") is None and chief.process.poll() is None:
            time.sleep(0.05)
        time.sleep(args.kill_worker_after * random.uniform(0.5, 1.5))
        worker.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_all(tasks, args.hang_after, lambda: killed_at)
        return report_kill(number, tasks, killed_at, args)
    wait_all(tasks, args.hang_after, lambda: chief.last(" saved "))
    return report_run(number, tasks, chief.last(" saved "), args)


def describe(task: Task, mark: float | None) -> str:
    if task.exited is None or task.process.returncode == -signal.SIGKILL:
        return f"{task.name} HUNG (killed)"
    after = f"{task.exited - mark:+.1f} s" if mark is not None else "?"
    return f"{task.name} exit {task.process.returncode} at {after}"


def report_run(number: int, tasks: list[Task], last_step: float | None, args: argparse.Namespace) -> bool:
    ok = last_step is not None and all(t.exited is not None and t.process.returncode == 0
                                       and t.exited - last_step <= args.within for t in tasks)
    print(f"run {number:2d}: " + "; ".join(describe(t, last_step) for t in tasks) + ("" if ok else "  FAILED"),
          flush=True)
    return ok


def report_kill(number: int, tasks: list[Task], killed_at: float, args: argparse.Namespace) -> bool:
    chief = tasks[1]
    message = next((line.strip() for _, line in chief.lines if "worker 1" in line and "ERROR" in line), "no message")
    ok = (chief.exited is not None and chief.process.returncode not in (0, -signal.SIGKILL)
          and "worker 1" in message and all(t.exited is not None for t in tasks))
    print(f"run {number:2d}: worker-1 killed; " + "; ".join(describe(t, killed_at) for t in (tasks[0], chief))
          + f"; chief said: {message[:160]}" + ("" if ok else "  FAILED"), flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--within", type=float, default=30.0, help="seconds after the last step a run must end in")
    parser.add_argument("--hang-after", type=float, default=120.0,
                        help="kill what still runs this many seconds after the last step (or the worker's kill)")
    parser.add_argument("--kill-worker-after", type=float, default=0.0,
                        help="kill the worker with SIGKILL about this many seconds into training (0: never)")
    parser.add_argument("--work-dir", default=None, help="keep the models and logs here (default: a temporary dir)")
    parser.add_argument("train_flags", nargs=argparse.REMAINDER, help="-- then more `aocr train` flags")
    args = parser.parse_args(argv)
    args.train_flags = args.train_flags[1:] if args.train_flags[:1] == ["--"] else args.train_flags
    with tempfile.TemporaryDirectory() as temp:
        work = Path(args.work_dir or temp)
        work.mkdir(parents=True, exist_ok=True)
        records = make_dataset(work)
        passed = sum(one_run(number, records, work, args) for number in range(1, args.runs + 1))
    print(f"{passed} of {args.runs} runs passed", flush=True)
    return 0 if passed == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
