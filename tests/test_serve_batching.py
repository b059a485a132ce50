"""Request batching (aocr.serving.batching) in-process, with a stand-in for the session run: fast."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from aocr.core.images import ImageHeader
from aocr.serving import batching
from aocr.serving.batching import Batcher, BatchOptions
from aocr.serving.status import Code, ServingError


class Model:
    """Answers each image with its own bytes upper-cased; records batch sizes; refuses b"bad"."""

    def __init__(self, seconds=0.0):
        self.seconds = seconds
        self.batches = []
        self.arrived = 0  # images handed to the model, held by the gate or not
        self.run_started = []  # time.monotonic() as each batch passed the gate
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, images, headers):
        self.arrived += len(images)
        assert self.gate.wait(10)
        self.run_started.append(time.monotonic())
        self.batches.append(len(images))
        time.sleep(self.seconds)
        if any(image == b"bad" for image in images):
            raise ServingError(Code.INVALID_ARGUMENT, "Unknown image file format")
        return {"output": np.array([image.upper() for image in images], dtype=object),
                "probability": np.full(len(images), 0.5)}


def images(*values):
    array = np.empty(len(values), dtype=object)
    array[:] = [v.encode() if isinstance(v, str) else v for v in values]
    return array


def wait_until(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def batcher_of():
    made = []

    def make(model, **options):
        batcher = Batcher(model, BatchOptions(**options))
        made.append(batcher)
        return batcher

    yield make
    for batcher in made:
        batcher.close(timeout=5)


def test_concurrent_requests_run_together_and_each_gets_its_own_answer(batcher_of):
    model = Model(seconds=0.05)
    batcher = batcher_of(model, max_batch_size=32, num_batch_threads=1)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: batcher.submit(images(f"img{i}"), timeout=10), range(24)))
    assert [a["output"].tolist() for a in answers] == [[f"IMG{i}".encode()] for i in range(24)]
    assert sum(model.batches) == 24 and max(model.batches) > 1


def test_a_request_larger_than_the_batch_is_split_and_answered_in_order(batcher_of):
    model = Model()
    batcher = batcher_of(model, max_batch_size=4, num_batch_threads=1)
    names = [f"i{n}" for n in range(10)]
    answer = batcher.submit(images(*names), timeout=10)
    assert answer["output"].tolist() == [n.upper().encode() for n in names]
    assert answer["probability"].shape == (10,)
    assert sorted(model.batches) == [2, 4, 4]


def test_a_bad_request_fails_alone_and_batching_goes_on(batcher_of):
    model = Model(seconds=0.02)
    model.gate.clear()  # hold the first batch so that the next requests queue up together
    batcher = batcher_of(model, max_batch_size=8, num_batch_threads=1)
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(batcher.submit, images("a"), 10)
        wait_until(lambda: model.arrived == 1)  # "a" is running, held
        futures = [pool.submit(batcher.submit, images(name), 10) for name in ("b", "bad", "c", "d")]
        wait_until(lambda: batcher._queued_images == 4)
        model.gate.set()
        assert first.result()["output"].tolist() == [b"A"]
        with pytest.raises(ServingError) as bad:
            futures[1].result()
        assert bad.value.code == Code.INVALID_ARGUMENT
        assert [futures[i].result()["output"].tolist() for i in (0, 2, 3)] == [[b"B"], [b"C"], [b"D"]]
    assert 4 in model.batches  # the four queued requests ran as one batch before the retry one by one
    assert batcher.submit(images("e"), timeout=10)["output"].tolist() == [b"E"]


def test_a_batch_holds_at_most_its_pixel_budget_however_many_requests_wait(batcher_of):
    """Requests each within the per-request limit must not add up to one batch that decodes gigabytes."""
    model = Model()
    model.gate.clear()
    batcher = batcher_of(model, max_batch_size=8, num_batch_threads=1, max_batch_pixels=100)
    large, small = [ImageHeader("PNG", 10, 6, pixels=60)], [ImageHeader("PNG", 2, 5, pixels=10)]
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(batcher.submit, images("first"), 10, small)
        wait_until(lambda: model.arrived == 1)  # held: the others queue up behind it
        queued = []
        for name, headers in (("a", large), ("b", large), ("c", small), ("d", small), ("e", large)):
            queued.append(pool.submit(batcher.submit, images(name), 10, headers))
            wait_until(lambda: batcher._queued_images == len(queued))  # queued in this order
        model.gate.set()
        assert [future.result()["output"].tolist() for future in [first, *queued]] == [
            [b"FIRST"], [b"A"], [b"B"], [b"C"], [b"D"], [b"E"]]
    assert model.batches == [1, 1, 3, 1]  # a (60); b, c, d (80); e (60): never over 100 pixels


def test_waits_are_bounded(batcher_of):
    model = Model()
    model.gate.clear()
    batcher = batcher_of(model, max_batch_size=2, num_batch_threads=1, max_enqueued_images=3)
    with ThreadPoolExecutor(2) as pool:
        stuck = pool.submit(batcher.submit, images("a"), 10)
        wait_until(lambda: model.arrived == 1)  # "a" is running, held by the gate
        started = time.monotonic()
        with pytest.raises(ServingError) as late:
            batcher.submit(images("b"), timeout=0.2)
        assert late.value.code == Code.DEADLINE_EXCEEDED and time.monotonic() - started < 2
        with pytest.raises(ServingError) as full:
            batcher.submit(images("c", "d", "e", "f"), timeout=5)
        assert full.value.code == Code.UNAVAILABLE
        model.gate.set()
        assert stuck.result(timeout=10)["output"].tolist() == [b"A"]
    assert model.batches == [1]  # "b" gave up before it ran, so it never ran


def test_the_timeout_waits_for_a_fuller_batch(batcher_of):
    model = Model()
    batcher = batcher_of(model, max_batch_size=4, timeout_s=1.0, num_batch_threads=1)
    started = time.monotonic()
    batcher.submit(images("a"), timeout=10)
    assert time.monotonic() - started >= 0.95  # alone: it waited for company
    with ThreadPoolExecutor(4) as pool:
        started = time.monotonic()
        list(pool.map(lambda name: batcher.submit(images(name), timeout=10), "wxyz"))
    assert time.monotonic() - started < 0.9 and model.batches[-1] == 4  # full: it ran at once


def test_the_adaptive_wait_gathers_clients_answered_together_and_a_lone_client_never_waits(batcher_of, monkeypatch):
    """Without a timeout, a batch waits (at most half the last run) for as many requests as were in the server
    when the last batch ended: a client answered a moment ago joins those still queued, instead of the two
    groups taking turns. A lone client runs at once."""
    monkeypatch.setattr(batching, "ADAPTIVE_WAIT_CAP_S", 1.0)
    model = Model(seconds=0.6)  # the wait is then at most 0.3 s
    model.gate.clear()
    batcher = batcher_of(model, max_batch_size=8, num_batch_threads=1)

    def client_a():
        first = batcher.submit(images("a"), 10)["output"].tolist()
        time.sleep(0.02)  # the answer's way back and the next request's way in
        return first + batcher.submit(images("again"), 10)["output"].tolist()

    with ThreadPoolExecutor(4) as pool:
        a = pool.submit(client_a)
        wait_until(lambda: model.arrived == 1)  # "a" runs, held; three others queue meanwhile
        others = [pool.submit(batcher.submit, images(name), 10) for name in ("x", "y", "z")]
        wait_until(lambda: batcher._queued_images == 3)
        model.gate.set()
        assert a.result() == [b"A", b"AGAIN"]
        assert [f.result()["output"].tolist() for f in others] == [[b"X"], [b"Y"], [b"Z"]]
    assert model.batches == [1, 4]  # without the wait: [1, 3, 1]
    batcher.submit(images("lone"), 10)  # the first lone request may wait for the four (at most 0.3 s)
    submitted = time.monotonic()
    batcher.submit(images("lone again"), 10)
    assert model.run_started[-1] - submitted < 0.2  # it ran at once: no wait of 0.3 s
    assert model.batches[-2:] == [1, 1]


def test_close_answers_what_is_queued_then_refuses(batcher_of):
    model = Model(seconds=0.02)
    model.gate.clear()
    batcher = batcher_of(model, max_batch_size=2, num_batch_threads=1)
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(batcher.submit, images(f"q{i}"), 10) for i in range(6)]
        wait_until(lambda: batcher._queued_images + model.arrived == 6)  # all in: queued or running
        closing = threading.Thread(target=batcher.close, args=(10,))
        closing.start()
        wait_until(lambda: batcher._closing)
        model.gate.set()
        closing.join(10)
        assert [f.result(timeout=10)["output"].tolist() for f in futures] == [[f"Q{i}".encode()] for i in range(6)]
    with pytest.raises(ServingError) as closed:
        batcher.submit(images("late"), timeout=1)
    assert closed.value.code == Code.UNAVAILABLE


def test_requests_left_when_the_drain_times_out_are_told_the_server_is_shutting_down(batcher_of):
    model = Model()
    model.gate.clear()  # the running batch holds until the end: the drain below cannot finish
    batcher = batcher_of(model, max_batch_size=1, num_batch_threads=1)
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(batcher.submit, images(f"q{i}"), 10) for i in range(3)]
        wait_until(lambda: batcher._queued_images + model.arrived == 3)
        batcher.close(timeout=0.1)
        model.gate.set()
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=10)["output"].tolist())
            except ServingError as e:
                outcomes.append(e.code)
    assert outcomes.count(Code.UNAVAILABLE) == 2 and [o for o in outcomes if o != Code.UNAVAILABLE] == [[b"Q0"]]
