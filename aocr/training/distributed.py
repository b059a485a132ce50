"""TF_CONFIG, the environment variable cloud trainers set for TensorFlow's distributed runtime.

    {"cluster": {"chief": ["host:port"], "worker": ["host:port", ...], "ps": ["host:port", ...]},
     "task": {"type": "worker", "index": 0}}

"master" is accepted as the older name of "chief".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from aocr.core.errors import AocrError

TASK_TYPES = ("chief", "master", "worker", "ps", "evaluator")


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in a cluster."""

    cluster: dict[str, list[str]]  # job name -> addresses
    task_type: str
    task_index: int

    @property
    def chief_job(self) -> str | None:
        return next((job for job in ("chief", "master") if self.cluster.get(job)), None)

    @property
    def is_chief(self) -> bool:
        """The chief writes checkpoints, params.json and summaries; without a chief job, worker 0 is the chief."""
        if self.chief_job:
            return self.task_type == self.chief_job
        return self.task_type == "worker" and self.task_index == 0

    @property
    def trainers(self) -> list[tuple[str, int]]:
        """Every task that runs training steps, the chief first: (job, index)."""
        jobs = [self.chief_job] if self.chief_job else []
        return [(job, i) for job in [*jobs, "worker"] for i in range(len(self.cluster.get(job, [])))]

    @property
    def trainer_rank(self) -> int:
        """This task's position among the trainers, which picks its shard of the data."""
        return self.trainers.index((self.task_type, self.task_index))

    @property
    def device(self) -> str:
        return f"/job:{self.task_type}/task:{self.task_index}"


def parse_tf_config(text: str) -> ClusterTask:
    """Check TF_CONFIG and say what is wrong with it in terms a user can act on."""
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise AocrError(f"TF_CONFIG is not valid JSON ({e}); unset it to train on this machine alone") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise AocrError("TF_CONFIG needs a 'cluster' object mapping job names to lists of host:port")
    cluster = config["cluster"]
    for job, addresses in cluster.items():
        if job not in TASK_TYPES:
            raise AocrError(f"TF_CONFIG cluster: unknown job {job!r}; expected some of {', '.join(TASK_TYPES)}")
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise AocrError(f"TF_CONFIG cluster.{job} must be a list of 'host:port' strings")
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task:
        raise AocrError("TF_CONFIG needs a 'task' object with 'type' and 'index'")
    task_type, index = task["type"], task.get("index", 0)
    if task_type not in TASK_TYPES:
        raise AocrError(f"TF_CONFIG task.type {task_type!r} is unknown; expected one of {', '.join(TASK_TYPES)}")
    if task_type not in cluster:
        raise AocrError(f"TF_CONFIG task.type {task_type!r} has no entry in the cluster")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise AocrError(f"TF_CONFIG task.index {index!r} is out of range: cluster.{task_type} has "
                        f"{len(cluster[task_type])} address(es)")
    _check_jobs(cluster)
    return ClusterTask(cluster, task_type, index)


def _check_jobs(cluster: dict[str, list[str]]) -> None:
    """The jobs a cluster of several tasks needs: someone to train, one chief at most, a parameter server."""
    if not cluster.get("worker") and not any(cluster.get(job) for job in ("chief", "master")):
        raise AocrError("TF_CONFIG cluster has no chief and no worker to train")
    if cluster.get("chief") and cluster.get("master"):
        raise AocrError("TF_CONFIG cluster has both 'chief' and 'master', two names for the one chief: keep one")
    if len(cluster.get("chief", []) + cluster.get("master", [])) > 1:
        raise AocrError("TF_CONFIG cluster has more than one chief address; a cluster has one chief")
    tasks = sum(len(addresses) for addresses in cluster.values())
    if tasks > 1 and not cluster.get("ps"):
        raise AocrError("TF_CONFIG cluster has no 'ps' job: aocr trains a cluster with parameter servers; add one "
                        "('ps': ['host:port']), or unset TF_CONFIG to train on one machine")


def from_environment() -> ClusterTask | None:
    """The cluster task from TF_CONFIG, or None when training on one machine (TF_CONFIG unset,
    empty, or naming no cluster)."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    task = parse_tf_config(text)
    single = sum(len(addresses) for addresses in task.cluster.values()) <= 1
    return None if single else task
