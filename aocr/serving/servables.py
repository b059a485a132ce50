"""The served model: its loaded versions, their labels, and the lookups TF Serving's ServerCore makes.

A request names a model and, at most, a version number or a version label; with neither it gets the
latest (highest) loaded version. The error texts are TF Serving's, so a client sees the same words:

    unknown model or version        NOT_FOUND         Servable not found for request: Specific(aocr, 9)
    unknown label                   INVALID_ARGUMENT  Unrecognized servable version label: canary
    status of an unknown model      NOT_FOUND         Could not find any versions of model other
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
from PIL import Image

from aocr.core import defaults, savedmodel
from aocr.core.errors import AocrError
from aocr.core.images import BadImage, ImageHeader, check_served_image
from aocr.core.precision import enable_bfloat16_rewrite
from aocr.serving.batching import Batcher, BatchOptions, Headers
from aocr.serving.shards import Shards, cpu_shards, one_thread_per_op
from aocr.serving.status import Code, ServingError, invalid, not_found

log = logging.getLogger("aocr")


# The node TensorFlow names after its message: "\t [[{{node decode_image/DecodeImage}}]]".
NODE_NOTE = re.compile(r"\s*\[\[\{\{node [^}]*\}\}\]\]")


def session_message(error: tf.errors.OpError) -> str:
    """TensorFlow's own message for a failed run, without what its Python client adds (the failing node, where
    it was defined) and without the graph's node names, which mean nothing to a client."""
    lines = [line for line in (error.message or "").splitlines()
             if line.strip() and not line.startswith(("Graph execution error:", "Detected at node", "Node: '", "  "))]
    return NODE_NOTE.sub("", "\n".join(lines)).strip() or type(error).__name__


def check_request_images(images: np.ndarray) -> list[ImageHeader]:
    """The headers of a request's images (in the order of images.reshape(-1)), read before anything decodes
    them; INVALID_ARGUMENT for an element that is not bytes, or whose size cannot be read from its header, or
    that declares more than MAX_REQUEST_PIXELS; RESOURCE_EXHAUSTED for more than MAX_REQUEST_IMAGES images or
    MAX_REQUEST_PIXELS pixels in all."""
    flat = images.reshape(-1)
    if flat.size > defaults.MAX_REQUEST_IMAGES:
        raise ServingError(Code.RESOURCE_EXHAUSTED, f"{flat.size} images in one request, over the limit of "
                           f"{defaults.MAX_REQUEST_IMAGES}; send them in several requests")
    pixels, headers = 0, []
    for index, data in enumerate(flat):
        if not isinstance(data, bytes | np.bytes_):
            raise invalid(f"image {index} is not a string of bytes")
        try:
            headers.append(check_served_image(bytes(data), defaults.MAX_REQUEST_PIXELS))
        except BadImage as e:
            raise invalid(f"image {index}: {e}") from None
        pixels += headers[-1].pixels
        if pixels > defaults.MAX_REQUEST_PIXELS:
            raise ServingError(Code.RESOURCE_EXHAUSTED, f"the request's first {index + 1} images declare "
                               f"{pixels / 1e6:.1f} megapixels in all, over the limit of "
                               f"{defaults.MAX_REQUEST_PIXELS / 1e6:g}; send them in several requests")
    return headers


def require_image_bytes(signature: Any, key: str) -> None:
    """aocr serve feeds encoded images only; a signature with other inputs (pixels) is refused."""
    if set(signature.inputs) != {savedmodel.INPUT_KEY}:
        raise invalid(f'signature "{key}" takes {", ".join(sorted(signature.inputs))}, which aocr serve does not '
                      "feed: send encoded images to serving_default or n_best, or serve this export with "
                      "tensorflow_model_server")


@dataclass
class Version:
    """One loaded SavedModel version; predictions go through its batcher when batching is on, and each
    session run is cut into `shards` (aocr.serving.shards)."""

    number: int
    model: savedmodel.Loaded
    shards: Shards = field(default_factory=lambda: Shards(1))
    batcher: Batcher | None = None

    @property
    def signature(self) -> Any:  # a SignatureDef proto
        """The `serving_default` SignatureDef."""
        return self.model.signature

    def run(self, images: np.ndarray, signature_key: str = savedmodel.SIGNATURE,
            headers: Headers | None = None) -> dict[str, np.ndarray]:
        """All outputs of a signature for `images` (bytes, any shape the graph takes), in one session run per shard.
        headers: the images' headers in the order of images.reshape(-1), where check_request_images read them."""
        headers = check_request_images(images) if headers is None else headers
        outputs = self.model.signature_outputs(signature_key)  # every signature reads the one image input

        def run_shard(shard: np.ndarray) -> dict[str, np.ndarray]:
            try:
                return self.model.session.run(outputs, {self.model.input_name: shard})
            except tf.errors.OpError as e:
                raise ServingError(Code(e.error_code), session_message(e)) from None

        aspects = [header.width / max(header.height, 1) if header else 0.0 for header in headers]
        return self.shards.run(run_shard, images, aspects)

    def run_batch(self, images: np.ndarray, headers: Headers) -> dict[str, np.ndarray]:
        """`serving_default`'s outputs for a batch of images ([N] bytes) and their headers (aocr.serving.batching)."""
        return self.run(images, headers=headers)

    def predict(self, images: np.ndarray, timeout: float,
                signature_key: str = savedmodel.SIGNATURE) -> dict[str, np.ndarray]:
        """All outputs of a signature for `images`; with batching on, `serving_default` requests of a
        scalar or a list are batched with others (an `n_best` request runs alone).

        Every image is sized from its header before anything decodes it (check_request_images), so a
        small hostile request cannot make the server allocate gigabytes.
        """
        headers = check_request_images(images)
        if self.batcher is None or signature_key != savedmodel.SIGNATURE or images.ndim > 1 or images.size == 0:
            return self.run(images, signature_key, headers)
        if images.ndim == 0:
            return {key: value[0] for key, value in self.batcher.submit(images.reshape(1), timeout, headers).items()}
        return self.batcher.submit(images, timeout, headers)

    def warm_up(self) -> None:
        """Run each signature aocr serve answers once, on a blank image: the first run of a signature pays
        for TensorFlow's graph rewriting and executor set-up (some 300 ms), which no client should."""
        blank = io.BytesIO()
        Image.new("L", (64, 32), 255).save(blank, format="PNG")
        images = np.array([blank.getvalue()], dtype=object)
        for key, signature in self.model.meta_graph.signature_def.items():
            if set(signature.inputs) == {savedmodel.INPUT_KEY}:
                try:
                    self.run(images, key)
                except ServingError as e:  # the export still serves; its first request pays the set-up
                    log.warning("version %d: warming up %s failed (%s)", self.number, key, e.message)

    def close(self, timeout: float) -> None:
        """Answer what is queued and let running shards finish (within `timeout` seconds in all), then release
        the session."""
        deadline = time.monotonic() + timeout
        if self.batcher is not None:
            self.batcher.close(timeout)
        if not self.shards.close(max(0.0, deadline - time.monotonic())):
            log.warning("version %d: a batch still runs after %.0f s; closing anyway", self.number, timeout)
        self.model.close()


@dataclass
class Servable:
    """The versions of one model served under `name`, and the version labels that point at them."""

    name: str
    versions: dict[int, Version]
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def latest(self) -> Version:
        """The highest loaded version: what a request without version or label gets."""
        return self.versions[max(self.versions)]

    def find(self, name: str, version: int | None = None, label: str | None = None) -> Version:
        """The version a request for model `name` (and `version` or `label`) gets, as ServerCore finds it."""
        if not name:
            raise invalid("ModelSpec has no name specified.")
        if label is not None:
            if name != self.name or label not in self.labels:
                raise invalid(f"Unrecognized servable version label: {label}")
            version = self.labels[label]
        if version is None:
            if name != self.name:
                raise not_found(f"Servable not found for request: Latest({name})")
            return self.latest
        if name != self.name or version not in self.versions:
            raise not_found(f"Servable not found for request: Specific({name}, {version})")
        return self.versions[version]

    def status(self, name: str, version: int | None = None) -> list[int]:
        """Loaded version numbers for a status request, newest first (GetModelStatusImpl; labels play no part)."""
        if version is not None:
            if name != self.name or version not in self.versions:
                raise not_found(f"Could not find version {version} of model {name}")
            return [version]
        if name != self.name:
            raise not_found(f"Could not find any versions of model {name}")
        return sorted(self.versions, reverse=True)

    def close(self, timeout: float) -> None:
        """Drain every version's queue (within `timeout` seconds in all) and release the sessions."""
        deadline = time.monotonic() + timeout
        for version in self.versions.values():
            version.close(max(0.0, deadline - time.monotonic()))


def parse_labels(pairs: Sequence[str]) -> dict[str, int]:
    """`--version-label LABEL=VERSION` values -> {label: version}; a malformed one is an AocrError."""
    labels: dict[str, int] = {}
    for pair in pairs:
        label, _, number = pair.partition("=")
        if not label or not savedmodel.is_version_number(number) or label.isdigit() or "/" in label or ":" in label:
            raise AocrError(f"--version-label {pair!r}: expected LABEL=VERSION, such as stable=1 "
                            "(a label is not a number and has no '/' or ':')")
        if label in labels and labels[label] != int(number):
            raise AocrError(f"--version-label {label} is given twice, for versions {labels[label]} and {number}")
        labels[label] = int(number)
    return labels


def session_config(precision: str, shards: int = 1) -> tf.compat.v1.ConfigProto:
    """A served session's options: with precision "bfloat16", the float32 graph runs in bfloat16 where
    oneDNN allows (aocr.core.precision.enable_bfloat16_rewrite); with shards > 1, that many runs at once,
    each op on one thread (aocr.serving.shards)."""
    config = tf.compat.v1.ConfigProto(allow_soft_placement=True)
    if precision == "bfloat16":
        enable_bfloat16_rewrite(config)
    one_thread_per_op(config, shards)
    return config


def load_servable(export_dir: str, name: str, version: int | None, labels: dict[str, int],
                  batching: BatchOptions | None, precision: str = "float32") -> Servable:
    """Load the chosen version (default: the newest) and every labelled one from DIR/VERSION folders,
    to compute in `precision` ("float32" or "bfloat16")."""
    available = savedmodel.versions(export_dir)
    if not available:
        raise AocrError(f"{export_dir}: no version directory (1, 2, ...); make one with `aocr export {export_dir}`")
    wanted = {available[-1] if version is None else version, *labels.values()}
    missing = sorted(wanted - set(available))
    if missing:
        raise AocrError(f"{export_dir}: no version {', '.join(map(str, missing))}; there are {available}")
    loaded: dict[int, Version] = {}
    shards = cpu_shards()
    try:
        for number in sorted(wanted):
            model = savedmodel.load(savedmodel.version_path(export_dir, number), session_config(precision, shards))
            loaded[number] = Version(number, model, Shards(shards))
            loaded[number].warm_up()
            if batching is not None:
                loaded[number].batcher = Batcher(loaded[number].run_batch, batching, f" v{number}")
    except BaseException:
        for done in loaded.values():
            done.close(timeout=1.0)
        raise
    return Servable(name, loaded, labels)
