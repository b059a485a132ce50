"""Start a TensorFlow cluster of parameter servers and workers as separate processes on 127.0.0.1,
each running `aocr train` with its own TF_CONFIG, and wait for it to finish.

    python tools/local_cluster.py --ps 1 --workers 2 -- DATASET --model-dir DIR --max-steps 200 [train flags]

Ports are picked free. Worker 0 is the chief: it writes checkpoints, params.json and summaries.
Every process is stopped when the workers are done, on Ctrl-C, or after --timeout seconds.
Each process's log goes to DIR-logs/<job>-<index>.log next to the model dir (or ./cluster-logs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def cluster_spec(ps: int, workers: int) -> dict[str, list[str]]:
    ports = free_ports(ps + workers)
    return {"worker": [f"127.0.0.1:{p}" for p in ports[:workers]],
            "ps": [f"127.0.0.1:{p}" for p in ports[workers:]]}


def task_command(cluster: dict, job: str, index: int, train_args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of one task's `aocr train`."""
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": job, "index": index}}))
    return [sys.executable, "-m", "aocr", "train", *train_args, "--log-path", ""], env


def start(cluster: dict, job: str, index: int, train_args: list[str], log_dir: Path) -> subprocess.Popen:
    command, env = task_command(cluster, job, index, train_args)
    log = open(log_dir / f"{job}-{index}.log", "w")  # noqa: SIM115 - closed when the process is reaped
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def model_dir_of(train_args: list[str]) -> str | None:
    for flag in ("--model-dir", "--job-dir"):
        if flag in train_args and train_args.index(flag) + 1 < len(train_args):
            return train_args[train_args.index(flag) + 1]
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ps", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then the arguments of `aocr train`")
    args = parser.parse_args(argv)
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    model_dir = model_dir_of(train_args)
    log_dir = Path(f"{model_dir.rstrip('/')}-logs" if model_dir and "://" not in model_dir else "cluster-logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    cluster = cluster_spec(args.ps, args.workers)
    print(f"cluster: {json.dumps(cluster)}; logs in {log_dir}/", flush=True)
    ps = [start(cluster, "ps", i, train_args, log_dir) for i in range(args.ps)]
    workers = [start(cluster, "worker", i, train_args, log_dir) for i in range(args.workers)]
    status = 1
    try:
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and any(w.poll() is None for w in workers):
            time.sleep(0.5)
        finished = all(w.poll() is not None for w in workers)
        status = 0 if finished and all(w.returncode == 0 for w in workers) else 1
        for p in ps:  # parameter servers leave once every worker has said it is done
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)
        if not finished:
            print(f"timed out after {args.timeout:.0f} s", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted: stopping the cluster", file=sys.stderr)
    finally:
        stop_all(ps + workers)
    for name, process in [*(("ps", p) for p in ps), *(("worker", w) for w in workers)]:
        print(f"{name} pid {process.pid}: exit {process.returncode}")
    return status


if __name__ == "__main__":
    sys.exit(main())
