"""Property tests of the two parsers that face the network: any body a client sends becomes tensors or a 4xx
ServingError, never another exception (a 500), and any bytes given as an image are sized or refused by name."""

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aocr.core.images import BadImage, check_served_image
from aocr.serving.rest_json import parse_body, request_tensors, signature_name
from aocr.serving.status import ServingError
from tools import hostile_images

JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
KEYS = st.sampled_from(["input", "b64", "images", "widths", "x"])
JSON_VALUES = st.recursive(JSON_LEAVES | st.fixed_dictionaries({"b64": st.text(max_size=12)}),
                           lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(KEYS, children, max_size=3),
                           max_leaves=20)
BODIES = st.fixed_dictionaries({}, optional={"instances": JSON_VALUES, "inputs": JSON_VALUES,
                                             "signature_name": JSON_VALUES})


# The inputs of the two kinds of signature aocr serve feeds (aocr.serving.inputs): encoded images, and pixels.
SIGNATURE_TYPES = [{"input": np.dtype(object)}, {"images": np.dtype(np.float32), "widths": np.dtype(np.int32)}]


def parse_request(raw: bytes, types: dict[str, np.dtype]) -> dict[str, np.ndarray]:
    doc = parse_body(raw)
    signature_name(doc)
    return request_tensors(doc, types)[1]


def assert_tensors_or_a_4xx(raw: bytes) -> None:
    for types in SIGNATURE_TYPES:
        try:
            tensors = parse_request(raw, types)
        except ServingError as e:
            assert 400 <= e.http_status < 500, (e.http_status, e.message)
            continue
        assert {name: tensor.dtype for name, tensor in tensors.items()} == types


@settings(max_examples=300, deadline=None)
@given(BODIES)
def test_any_json_body_becomes_tensors_or_a_4xx(body):
    assert_tensors_or_a_4xx(json.dumps(body).encode("utf-8"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_as_a_body_become_tensors_or_a_4xx(raw):
    assert_tensors_or_a_4xx(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM"]))
def test_any_bytes_as_an_image_are_sized_or_refused_by_name(tail, signature):
    try:
        header = check_served_image(signature + tail, 50_000_000)
    except BadImage as e:
        assert str(e)
        return
    assert header.width >= 1 and header.height >= 1 and header.pixels <= 50_000_000


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=2000), st.integers(min_value=1, max_value=5000))
def test_a_real_png_with_bytes_cut_or_flipped_is_sized_or_refused(cut, flip):
    data = bytearray(hostile_images.encode(hostile_images.text_image(), "PNG"))
    data[flip % len(data)] ^= 0xFF
    try:
        check_served_image(bytes(data[:max(cut, 1)]), 50_000_000)
    except BadImage as e:
        assert str(e)
