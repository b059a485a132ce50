"""In-process unit tests of what a cluster run decides before any process talks to another: TF_CONFIG,
each task's role and shard, and the convolutions' precision on CPUs with and without bfloat16 units."""

import json

import pytest
import tensorflow as tf

from aocr.core.errors import AocrError
from aocr.core.precision import cpu_has_bf16_units, inference_precision, serving_precision, training_compute_dtype
from aocr.training.distributed import from_environment, parse_tf_config
from tests.aocr_log import capture_aocr_log

aocr_log = pytest.fixture(name="aocr_log")(capture_aocr_log)


def tf_config(cluster: dict, task_type: str, index: int = 0) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


TWO_WORKERS = {"worker": ["127.0.0.1:1", "127.0.0.1:2"], "ps": ["127.0.0.1:3"]}


@pytest.mark.parametrize(("text", "words"), [
    ("{not json", "not valid JSON"),
    (json.dumps({"task": {"type": "worker"}}), "'cluster' object"),
    (json.dumps({"cluster": {"boss": ["h:1"]}, "task": {"type": "worker"}}), "unknown job 'boss'"),
    (json.dumps({"cluster": {"worker": "127.0.0.1:1"}, "task": {"type": "worker"}}), "list"),
    (json.dumps({"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker"}}), "host:port"),
    (json.dumps({"cluster": TWO_WORKERS}), "'task' object"),
    (tf_config(TWO_WORKERS, "boss"), "'boss' is unknown"),
    (tf_config(TWO_WORKERS, "chief"), "no entry in the cluster"),
    (tf_config(TWO_WORKERS, "worker", 2), "out of range"),
    (tf_config({"ps": ["127.0.0.1:3"]}, "ps"), "no chief and no worker"),
    (json.dumps({"cluster": TWO_WORKERS, "task": {"type": "worker", "index": True}}), "out of range"),
    (tf_config({"chief": ["127.0.0.1:4"], "master": ["127.0.0.1:5"], **TWO_WORKERS}, "chief"), "both 'chief'"),
    (tf_config({"chief": ["127.0.0.1:4", "127.0.0.1:5"], **TWO_WORKERS}, "chief"), "more than one chief"),
    (tf_config({"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "worker"), "no 'ps' job"),
])
def test_a_bad_tf_config_names_what_is_wrong(text, words):
    with pytest.raises(AocrError, match="TF_CONFIG") as error:
        parse_tf_config(text)
    assert words in str(error.value)


def test_without_a_chief_job_worker_0_is_the_chief_and_shards_follow_the_trainers():
    first, second = (parse_tf_config(tf_config(TWO_WORKERS, "worker", i)) for i in (0, 1))
    assert first.is_chief and not second.is_chief
    assert (first.trainer_rank, second.trainer_rank) == (0, 1)
    assert second.device == "/job:worker/task:1"
    assert not parse_tf_config(tf_config(TWO_WORKERS, "ps")).is_chief


@pytest.mark.parametrize("chief_job", ["chief", "master"])
def test_a_chief_job_is_the_first_trainer(chief_job):
    cluster = {chief_job: ["127.0.0.1:0"], **TWO_WORKERS}
    chief = parse_tf_config(tf_config(cluster, chief_job))
    worker = parse_tf_config(tf_config(cluster, "worker", 0))
    assert chief.is_chief and not worker.is_chief
    assert chief.trainers == [(chief_job, 0), ("worker", 0), ("worker", 1)]
    assert (chief.trainer_rank, worker.trainer_rank) == (0, 1)


@pytest.mark.parametrize(("value", "alone"), [("", True), ("  ", True),
                                              (tf_config({"worker": ["127.0.0.1:1"]}, "worker"), True),
                                              (tf_config(TWO_WORKERS, "worker", 1), False)])
def test_one_machine_unless_tf_config_names_a_cluster(monkeypatch, value, alone):
    monkeypatch.setenv("TF_CONFIG", value)
    task = from_environment()
    assert (task is None) == alone


def cpuinfo(tmp_path, flags: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n")
    return str(path)


def test_bf16_units_are_read_from_the_cpu_flags(tmp_path):
    assert cpu_has_bf16_units(cpuinfo(tmp_path, "avx512f avx512_bf16"))
    assert cpu_has_bf16_units(cpuinfo(tmp_path, "amx_tile amx_bf16"))
    assert not cpu_has_bf16_units(cpuinfo(tmp_path, "avx512f"))
    assert not cpu_has_bf16_units(str(tmp_path / "missing"))


def test_precision_choices(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    has_units = cpu_has_bf16_units()
    assert training_compute_dtype("auto", None) == (tf.bfloat16 if has_units else tf.float32)
    assert training_compute_dtype("auto", 0) == tf.float32  # a GPU: float32 unless asked
    assert training_compute_dtype("float32", None) == tf.float32
    assert training_compute_dtype("bfloat16", 0) == tf.bfloat16
    assert training_compute_dtype("auto", None, in_cluster=True) == tf.float32
    with pytest.raises(AocrError, match="--precision bfloat16 does not work in a cluster"):
        training_compute_dtype("bfloat16", None, in_cluster=True)


@pytest.mark.skipif(not cpu_has_bf16_units(), reason="needs a CPU with bfloat16 units (AMX or AVX-512 BF16)")
def test_auto_precision_treats_a_cpu_limited_to_avx2_as_one_without_bfloat16_units(monkeypatch, aocr_log):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert training_compute_dtype("auto", None) == tf.float32
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in aocr_log.text


def test_auto_precision_says_what_it_chose_and_why(monkeypatch, aocr_log):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert inference_precision("auto", None) == "float32"
    assert serving_precision("bfloat16") == "float32"
    assert "--precision auto: float32, since" in aocr_log.text
    assert "serving in float32" in aocr_log.text


def test_a_trainer_restarted_after_the_cluster_started_passes_the_start_barrier():
    """The barrier holds one token per trainer: a trainer that rejoins a started cluster finds it full and must go
    on, not wait for room that never comes."""
    import threading

    import tensorflow.compat.v1 as tf1

    from aocr.training.cluster import wait_for_trainers

    graph = tf.Graph()
    with graph.as_default():
        queue = tf1.FIFOQueue(2, tf.int32)
        barrier = (queue.enqueue(1), queue.size())
    with tf1.Session(graph=graph) as session:
        first = threading.Thread(target=wait_for_trainers, args=(session, barrier, 2, 60.0), daemon=True)
        first.start()
        wait_for_trainers(session, barrier, 2, 60.0)  # the second trainer: both have arrived
        first.join(60)
        assert not first.is_alive()
        rejoined = threading.Thread(target=wait_for_trainers, args=(session, barrier, 2, 60.0), daemon=True)
        rejoined.start()
        rejoined.join(30)
        assert not rejoined.is_alive(), "a restarted trainer waits at a full start barrier"
