"""A served batch run as shards side by side (aocr.serving.shards), on a real export, in-process."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from aocr.core import defaults
from aocr.serving.inputs import check_request_images
from aocr.serving.servables import load_servable
from aocr.serving.shards import Shards, cgroup_cpu_limit
from aocr.serving.status import Code, ServingError
from tests.conftest import run_aocr


@pytest.fixture(scope="module")
def version(trained_model, tmp_path_factory):
    """Version 1 of the trained model's export, loaded as `aocr serve` loads it, cut into 3 shards."""
    directory = tmp_path_factory.mktemp("sharded")
    result = run_aocr("export", str(directory / "model"), "--model-dir", str(trained_model), cwd=directory)
    assert result.returncode == 0, result.stderr
    loaded = load_servable(str(directory / "model"), "aocr", None, {}, None, "float32").latest
    loaded.shards.close(timeout=5.0)
    loaded.shards = Shards(3)
    yield loaded
    loaded.close(timeout=5.0)


@pytest.fixture(scope="module")
def widest_first(digits_set):
    """Seven images of the digits set, widest first: the shards (narrow to wide) take them in reverse."""
    paths = sorted(digits_set.images[:7], key=lambda path: -Image.open(path).size[0])
    widths = [Image.open(path).size[0] for path in paths]
    assert widths[0] > widths[-1]
    return np.array([path.read_bytes() for path in paths], dtype=object)


@pytest.mark.parametrize("budget", [defaults.MAX_RUN_MODEL_PIXELS, 32 * 60 * 3])
def test_a_sharded_batch_answers_each_image_in_its_place(version, widest_first, budget):
    """With the default budget the seven images run as three shards; with a budget of a few images, in rounds
    of three shards."""
    version.shards.budget = budget
    for signature in ("serving_default", "n_best"):
        alone = [version.run(widest_first[i:i + 1], signature) for i in range(len(widest_first))]
        together = version.run(widest_first, signature)
        for key, value in together.items():
            assert value.shape[0] == len(widest_first)
            for i, answer in enumerate(alone):
                if value.dtype == object:
                    assert value[i:i + 1].tolist() == answer[key].tolist(), (signature, key, i)
                else:
                    np.testing.assert_allclose(value[i:i + 1], answer[key], rtol=1e-4, atol=1e-6)
    version.shards.budget = defaults.MAX_RUN_MODEL_PIXELS


def test_many_wide_images_feed_the_model_within_the_budget_at_most_count_at_once():
    """Shards.run cuts a batch by the pixels the model is fed (each image padded to its shard's widest)."""
    shards, lock, running, fed = Shards(2, budget=32 * 400), threading.Lock(), [0], []

    def run(indices):
        with lock:
            running[0] += 1
            fed.append((len(indices), max(widths[i] for i in indices), running[0]))
        with lock:
            running[0] -= 1
        return {"output": indices}

    widths = [40, 200, 8, 120, 16, 16, 64, 400, 24, 80]
    answer = shards.run(run, np.arange(len(widths)), widths, 32)
    shards.close(timeout=5.0)
    assert answer["output"].tolist() == list(range(len(widths)))
    assert sum(count for count, _, _ in fed) == len(widths)
    assert all(count * widest * 32 <= 32 * 200 or count == 1 for count, widest, _ in fed), fed
    assert max(at_once for _, _, at_once in fed) <= 2 and len(fed) > 2


def test_a_decoded_image_too_wide_for_the_model_is_refused_and_a_batch_of_them_runs_in_parts(version,
                                                                                               widest_first):
    from aocr.serving.inputs import MAX_IMAGE_MODEL_PIXELS

    too_wide = MAX_IMAGE_MODEL_PIXELS // 32 + 1
    with pytest.raises(ServingError) as refused:
        version.run_pixels({"images": np.zeros([1, 32, too_wide, 1], np.float32),
                            "widths": np.array([too_wide], np.int32)}, "pixels")
    assert refused.value.code == Code.INVALID_ARGUMENT
    assert f"at most {too_wide - 1} pixels wide" in refused.value.message
    pixels = version.model.signature_inputs("pixels")
    images, widths = version.model.session.run([pixels["images"], pixels["widths"]],
                                               {version.model.input_name: widest_first})
    tensors = {"images": images, "widths": widths}
    whole = version.run_pixels(tensors, "pixels")
    version.shards.budget = 32 * 60 * 3
    try:
        parts = version.run_pixels(tensors, "pixels")
    finally:
        version.shards.budget = defaults.MAX_RUN_MODEL_PIXELS
    assert parts["output"].tolist() == whole["output"].tolist()
    np.testing.assert_allclose(parts["probability"], whole["probability"], rtol=1e-4)


def test_a_bad_image_fails_its_batch_once_every_shard_is_done_and_the_next_batch_runs(version, widest_first):
    batch = widest_first.copy()
    batch[2] = b"not an image"
    headers = check_request_images(widest_first)  # as if the header check had passed: the session refuses it
    with pytest.raises(ServingError) as failed:
        version.run(batch, headers=headers)
    assert failed.value.code == Code.INVALID_ARGUMENT
    assert version.run(widest_first)["output"].shape == (len(widest_first),)


def test_closing_waits_for_a_running_shard_only_as_long_as_it_is_told():
    shards, release = Shards(2), threading.Event()

    def run(images):
        if images[0] == b"held":
            assert release.wait(60)
        return {"output": images}

    images = np.array([b"quick", b"held"], dtype=object)
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(shards.run, run, images, [4, 8], 32)  # "held" runs on the shards' own thread
        started = time.monotonic()
        while not shards._in_flight and time.monotonic() - started < 30:
            time.sleep(0.01)
        started = time.monotonic()
        assert shards.close(timeout=0.3) is False
        assert time.monotonic() - started < 10
        release.set()
        assert answer.result(timeout=30)["output"].tolist() == [b"quick", b"held"]


@pytest.mark.parametrize("files, cpus", [
    ({"cpu.max": "200000 100000\n"}, 2.0),
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_a_containers_cpu_quota_is_read_from_cgroup_v2_or_v1(tmp_path, files, cpus):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(str(tmp_path)) == cpus
