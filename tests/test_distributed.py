"""Training on TensorFlow's distributed runtime from TF_CONFIG: a real cluster of processes on 127.0.0.1."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf

from tests.conftest import TINY_SHAPE, run_aocr
from tools.local_cluster import free_ports

LAUNCHER = Path(__file__).resolve().parent.parent / "tools" / "local_cluster.py"
TRIALS = LAUNCHER.with_name("cluster_trials.py")


def test_bad_tf_config_is_a_clear_error(digits_set, tmp_path):
    """Through the command line; each kind of mistake is a unit test in test_cluster_config.py."""
    config = json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 2}})
    result = run_aocr("train", str(digits_set.tfrecords), "--model-dir", "m", cwd=tmp_path, env={"TF_CONFIG": config})
    assert result.returncode != 0
    assert "TF_CONFIG" in result.stderr and "out of range" in result.stderr and "Traceback" not in result.stderr


def test_bfloat16_in_a_cluster_is_a_clear_error_before_training(digits_set, tmp_path):
    worker, ps = free_ports(2)
    config = {"cluster": {"worker": [f"127.0.0.1:{worker}"], "ps": [f"127.0.0.1:{ps}"]},
              "task": {"type": "worker", "index": 0}}
    result = run_aocr("train", str(digits_set.tfrecords), "--model-dir", "m", *TINY_SHAPE, "--precision", "bfloat16",
                      cwd=tmp_path, env={"TF_CONFIG": json.dumps(config)})
    assert result.returncode == 1
    assert "--precision bfloat16" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m" / "checkpoint").exists()


def own_steps(log: str) -> int:
    match = re.search(r"\((\d+) run by this task\)", log)
    assert match, log
    return int(match.group(1))


@pytest.mark.slow
def test_one_ps_two_workers_train_together_and_the_chief_checkpoint_tests(digits_set, tmp_path):
    """Asynchronous trainers, one epoch: each takes steps of its own shard, and the epoch ends when
    the global step has covered all 200 records once (50 steps of 4), not each shard's 25."""
    model = tmp_path / "m"
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), "--ps", "1", "--workers", "2", "--timeout", "600", "--",
         str(digits_set.tfrecords), "--model-dir", str(model), *TINY_SHAPE, "--batch-size", "4",
         "--num-epoch", "1", "--validation-split", "0", "--steps-per-checkpoint", "20", "--async"],
        capture_output=True, text=True, timeout=900)
    logs = {p.stem: p.read_text() for p in (tmp_path / "m-logs").glob("*.log")}
    assert result.returncode == 0, result.stdout + result.stderr + json.dumps(logs, indent=1)
    assert sorted(logs) == ["ps-0", "worker-0", "worker-1"]
    # Asynchronous trainers may both take the last step, so the global step can pass 50 by one.
    final = int(tf.train.latest_checkpoint(str(model)).rsplit("-", 1)[1])
    assert 50 <= final <= 51
    chief, other = own_steps(logs["worker-0"]), own_steps(logs["worker-1"])
    assert chief > 0 and other > 0 and chief + other >= 50 and max(chief, other) < 50  # both advanced the step
    assert "saved" in logs["worker-0"] and "saved" not in logs["worker-1"]  # only the chief writes
    assert "parameter server 0: done" in logs["ps-0"]
    tested = run_aocr("test", str(digits_set.tfrecords), "--model-dir", str(model), cwd=tmp_path)
    assert tested.returncode == 0 and "word accuracy:" in tested.stderr


def cluster_processes(model: Path) -> list[int]:
    """Pids of the `aocr train` processes working on this model dir."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if entry.name.isdigit() and "aocr train" in command and str(model) in command:
            pids.append(int(entry.name))
    return pids


@pytest.mark.slow
def test_synchronous_cluster_and_a_killed_worker_leave_a_loadable_checkpoint(digits_set, tmp_path):
    model = tmp_path / "m"
    launcher = subprocess.Popen(
        [sys.executable, str(LAUNCHER), "--ps", "1", "--workers", "2", "--timeout", "600", "--",
         str(digits_set.tfrecords), "--model-dir", str(model), *TINY_SHAPE, "--batch-size", "4",
         "--steps-per-checkpoint", "5", "--step-timeout", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while tf.train.latest_checkpoint(str(model)) is None and time.monotonic() < deadline:
            time.sleep(1)
        assert tf.train.latest_checkpoint(str(model)) is not None, "the chief saved no checkpoint"
        victim = next(pid for pid in cluster_processes(model) if '"type": "worker", "index": 1' in
                      Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace"))
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        launcher.communicate(timeout=300)
        noticed_in = time.monotonic() - killed
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGINT)
            launcher.communicate(timeout=60)
    chief_log = (tmp_path / "m-logs" / "worker-0.log").read_text()
    # Named by the step that timed out or by the watch of the peers, whichever comes first.
    assert re.search(r"ERROR .*worker 1 \(127\.0\.0\.1:\d+\).*--step-timeout|ERROR .*--step-timeout.*worker 1 "
                     r"\(127\.0\.0\.1:\d+\)", chief_log), chief_log
    assert noticed_in < 60, f"the cluster took {noticed_in:.0f} s to stop after the kill (--step-timeout 10)"
    assert launcher.returncode == 1  # the chief exits non-zero
    assert "left without saying done" in (tmp_path / "m-logs" / "ps-0.log").read_text()
    checkpoint = tf.train.latest_checkpoint(str(model))
    assert checkpoint is not None and int(checkpoint.rsplit("-", 1)[1]) >= 5
    tested = run_aocr("test", str(digits_set.tfrecords), "--model-dir", str(model), cwd=tmp_path)
    assert tested.returncode == 0, tested.stderr


@pytest.mark.slow
def test_synchronous_cluster_shuts_down_in_order_within_seconds_of_the_last_step(tmp_path):
    """1 ps + chief + 1 worker, the case of issue 16 (the chief used to hang closing its session towards a
    parameter server that had left): every process exits 0 within 30 s of the last step."""
    result = subprocess.run([sys.executable, str(TRIALS), "--runs", "1", "--within", "30", "--hang-after", "120",
                             "--work-dir", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0 and "1 of 1 runs passed" in result.stdout, result.stdout + result.stderr
