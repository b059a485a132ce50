"""A predict request's input tensors against its signature: which signatures aocr serve feeds, the types of
their inputs, and the limits that bound a request's cost before anything runs.

Two kinds of signature are fed:

    encoded images   `input`: DT_STRING, any shape          serving_default, n_best
    pixels           `images`: DT_FLOAT [N, H, W, C]        pixels (H and C are the model's)
                     `widths`: DT_INT32 [N]

Encoded images are sized from each image's header (check_request_images); pixels from their tensor's
shape (check_pixels). Either way a request holds at most MAX_REQUEST_IMAGES images and
MAX_REQUEST_PIXELS pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tensorflow.core.framework import types_pb2

from aocr.core import defaults, savedmodel
from aocr.core.images import BadImage, ImageHeader, check_served_image
from aocr.serving.status import Code, ServingError, invalid, shape_string

# The TensorFlow types of the inputs aocr serve feeds -> the NumPy types their tensors are read as.
SERVED_TYPES = {types_pb2.DT_STRING: np.dtype(object), types_pb2.DT_FLOAT: np.dtype(np.float32),
                types_pb2.DT_INT32: np.dtype(np.int32)}
TENSORFLOW_TYPES = {dtype: enum for enum, dtype in SERVED_TYPES.items()}
MAX_IMAGE_MODEL_PIXELS = defaults.MAX_RUN_MODEL_PIXELS // 2  # of one decoded image: it cannot be run in parts
IMAGE_INPUTS = frozenset({savedmodel.INPUT_KEY})
PIXEL_INPUTS = frozenset({savedmodel.IMAGES_KEY, savedmodel.WIDTHS_KEY})


def takes_pixels(signature: Any) -> bool:
    """The signature (a SignatureDef proto) takes decoded images and their widths, as `pixels` does."""
    return set(signature.inputs) == PIXEL_INPUTS


def model_height(meta_graph: Any) -> int:
    """The height the served model reads images at: its `pixels` signature's H, or the default height for an
    export without one."""
    signature = meta_graph.signature_def.get(savedmodel.PIXELS_SIGNATURE)
    dims = signature.inputs[savedmodel.IMAGES_KEY].tensor_shape.dim if signature is not None else []
    return dims[1].size if len(dims) == 4 and dims[1].size > 0 else defaults.IMAGE_HEIGHT


def model_width(header: ImageHeader | None, height: int) -> int:
    """The width an encoded image is read at, at `height`, from its header (upright, before the model's own
    cap on the width, which the server does not know); 0 where the header gives no size."""
    if header is None or header.width <= 0 or header.height <= 0:
        return 0
    width, tall = (header.height, header.width) if header.orientation >= 5 else (header.width, header.height)
    stride = defaults.WIDTH_STRIDE
    return max(stride, stride * round(width * height / tall / stride))


def input_types(signature: Any, key: str) -> dict[str, np.dtype]:
    """Input name -> the NumPy type of its tensor, for a signature aocr serve feeds; INVALID_ARGUMENT for any
    other (an export of another program, say)."""
    names = frozenset(signature.inputs)
    if names not in (IMAGE_INPUTS, PIXEL_INPUTS) or any(info.dtype not in SERVED_TYPES
                                                         for info in signature.inputs.values()):
        raise invalid(f'signature "{key}" takes {", ".join(sorted(names))}, which aocr serve does not feed: send '
                      "encoded images to serving_default or n_best, or images and widths to pixels, or serve this "
                      "export with tensorflow_model_server")
    return {name: SERVED_TYPES[info.dtype] for name, info in signature.inputs.items()}


def _too_many(count: int, pixels: int, what: str) -> ServingError | None:
    """RESOURCE_EXHAUSTED when `count` images or `pixels` pixels are over the request's limits."""
    if count > defaults.MAX_REQUEST_IMAGES:
        return ServingError(Code.RESOURCE_EXHAUSTED, f"{count} images in one request, over the limit of "
                            f"{defaults.MAX_REQUEST_IMAGES}; send them in several requests")
    if pixels > defaults.MAX_REQUEST_PIXELS:
        return ServingError(Code.RESOURCE_EXHAUSTED, f"{what} {pixels / 1e6:.1f} megapixels in all, over the "
                            f"limit of {defaults.MAX_REQUEST_PIXELS / 1e6:g}; send them in several requests")
    return None


def check_request_images(images: np.ndarray) -> list[ImageHeader]:
    """The headers of a request's encoded images (in the order of images.reshape(-1)), read before anything
    decodes them; INVALID_ARGUMENT for an element that is not bytes, or whose size cannot be read from its
    header, or that declares more than MAX_REQUEST_PIXELS; RESOURCE_EXHAUSTED for more than
    MAX_REQUEST_IMAGES images or MAX_REQUEST_PIXELS pixels in all."""
    flat = images.reshape(-1)
    if error := _too_many(flat.size, 0, ""):
        raise error
    pixels, headers = 0, []
    for index, data in enumerate(flat):
        if not isinstance(data, bytes | np.bytes_):
            raise invalid(f"image {index} is not a string of bytes")
        try:
            headers.append(check_served_image(bytes(data), defaults.MAX_REQUEST_PIXELS))
        except BadImage as e:
            raise invalid(f"image {index}: {e}") from None
        pixels += headers[-1].pixels
        if error := _too_many(0, pixels, f"the request's first {index + 1} images declare"):
            raise error
    return headers


def check_pixels(signature: Any, tensors: dict[str, np.ndarray]) -> None:
    """A `pixels` request: images float32 [N, H, W, C] with the signature's H and C, finite; widths int32 [N],
    each from 1 to W and at most MAX_IMAGE_MODEL_PIXELS / H; at most MAX_REQUEST_IMAGES images and
    MAX_REQUEST_PIXELS pixels (N x H x W)."""
    images, widths = tensors[savedmodel.IMAGES_KEY], tensors[savedmodel.WIDTHS_KEY]
    declared = [dim.size for dim in signature.inputs[savedmodel.IMAGES_KEY].tensor_shape.dim]  # [-1, H, -1, C]
    if images.ndim != len(declared) or any(size not in (-1, got)
                                           for size, got in zip(declared, images.shape, strict=True)):
        raise invalid(f"tensor {savedmodel.IMAGES_KEY}: its shape {shape_string(images.shape)} does not fit the "
                      f"signature's {shape_string(declared)} (images, height, width, channels; -1 is any)")
    count, height, width, _ = images.shape
    if widths.shape != (count,):
        raise invalid(f"tensor {savedmodel.WIDTHS_KEY}: its shape {shape_string(widths.shape)} should be "
                      f"[{count}], one width for each image")
    if error := _too_many(count, count * height * width, f"the request's {count} images hold"):
        raise error
    outside = np.flatnonzero((widths < 1) | (widths > width))
    if outside.size:
        raise invalid(f"{savedmodel.WIDTHS_KEY}[{outside[0]}] is {widths[outside[0]]}: each image's width is "
                      f"from 1 to the tensor's width, {width}")
    widest = int(np.argmax(widths)) if count else 0
    if count and widths[widest] * height > MAX_IMAGE_MODEL_PIXELS:
        raise invalid(f"{savedmodel.WIDTHS_KEY}[{widest}] is {widths[widest]}: an image of {height} rows may be at "
                      f"most {MAX_IMAGE_MODEL_PIXELS // height} pixels wide; cut it into shorter lines")
    if not np.isfinite(images).all():
        raise invalid(f"tensor {savedmodel.IMAGES_KEY} holds NaN or infinite values; pixels are 0 to 255")


def blank_pixels(signature: Any, width: int = 16) -> dict[str, np.ndarray]:
    """One white image for a `pixels` signature, as its inputs (to warm the signature up)."""
    _, height, _, channels = (dim.size for dim in signature.inputs[savedmodel.IMAGES_KEY].tensor_shape.dim)
    return {savedmodel.IMAGES_KEY: np.full([1, height, width, channels], 255, np.float32),
            savedmodel.WIDTHS_KEY: np.array([width], np.int32)}
