"""The served model: its loaded versions, their labels, and the lookups TF Serving's ServerCore makes.

A request names a model and, at most, a version number or a version label; with neither it gets the
latest (highest) loaded version. The error texts are TF Serving's, so a client sees the same words:

    unknown model or version        NOT_FOUND         Servable not found for request: Specific(aocr, 9)
    unknown label                   INVALID_ARGUMENT  Unrecognized servable version label: canary
    status of an unknown model      NOT_FOUND         Could not find any versions of model other
"""

from __future__ import annotations

import functools
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

from aocr.core import savedmodel
from aocr.core.errors import AocrError
from aocr.core.precision import enable_bfloat16_rewrite
from aocr.serving.batching import Batcher, BatchOptions, Headers
from aocr.serving.inputs import (
    IMAGE_INPUTS,
    blank_pixels,
    check_pixels,
    check_request_images,
    model_height,
    model_width,
    takes_pixels,
)
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


@dataclass
class Version:
    """One loaded SavedModel version; predictions go through its batcher when batching is on, and each
    session run is cut into `shards` (aocr.serving.shards)."""

    number: int
    model: savedmodel.Loaded
    shards: Shards = field(default_factory=lambda: Shards(1))
    batcher: Batcher | None = None

    @functools.cached_property
    def height(self) -> int:
        """The height the model reads images at (aocr.serving.inputs.model_height)."""
        return model_height(self.model.meta_graph)

    @property
    def signature(self) -> Any:  # a SignatureDef proto
        """The `serving_default` SignatureDef."""
        return self.model.signature

    def _session_run(self, outputs: dict[str, str], feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One session run; TensorFlow's error becomes the client's, with its own code."""
        try:
            return self.model.session.run(outputs, feed)
        except tf.errors.OpError as e:
            raise ServingError(Code(e.error_code), session_message(e)) from None

    def run(self, images: np.ndarray, signature_key: str = savedmodel.SIGNATURE,
            headers: Headers | None = None) -> dict[str, np.ndarray]:
        """All outputs of a signature for `images` (bytes, any shape the graph takes), in one session run per shard.
        headers: the images' headers in the order of images.reshape(-1), where check_request_images read them."""
        headers = check_request_images(images) if headers is None else headers
        outputs = self.model.signature_outputs(signature_key)  # every such signature reads the one image input
        return self.shards.run(lambda shard: self._session_run(outputs, {self.model.input_name: shard}),
                               images, [model_width(header, self.height) for header in headers], self.height)

    def run_pixels(self, tensors: dict[str, np.ndarray], signature_key: str) -> dict[str, np.ndarray]:
        """All outputs of a signature that takes images [N, H, W, C] and widths [N] (aocr.serving.inputs), in one
        session run per shard, each shard's images cut to its widest."""
        check_pixels(self.model.meta_graph.signature_def[signature_key], tensors)
        images, widths = tensors[savedmodel.IMAGES_KEY], tensors[savedmodel.WIDTHS_KEY]
        inputs, outputs = self.model.signature_inputs(signature_key), self.model.signature_outputs(signature_key)

        def run_shard(indices: np.ndarray) -> dict[str, np.ndarray]:
            width = int(widths[indices].max()) if indices.size else images.shape[2]
            return self._session_run(outputs, {inputs[savedmodel.IMAGES_KEY]: images[indices, :, :width],
                                               inputs[savedmodel.WIDTHS_KEY]: widths[indices]})

        return self.shards.run(run_shard, np.arange(len(widths)), widths.tolist(), images.shape[1])

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

    def answer(self, tensors: dict[str, np.ndarray], timeout: float, signature_key: str) -> dict[str, np.ndarray]:
        """All outputs of a signature for a request's input tensors (named as aocr.serving.inputs.input_types
        names them): encoded images through predict, pixels through run_pixels."""
        if takes_pixels(self.model.meta_graph.signature_def[signature_key]):
            return self.run_pixels(tensors, signature_key)
        return self.predict(tensors[savedmodel.INPUT_KEY], timeout, signature_key)

    def warm_up(self) -> None:
        """Run each signature aocr serve answers once, on a blank image: the first run of a signature pays
        for TensorFlow's graph rewriting and executor set-up (some 300 ms), which no client should."""
        blank = io.BytesIO()
        Image.new("L", (64, 32), 255).save(blank, format="PNG")
        images = np.array([blank.getvalue()], dtype=object)
        for key, signature in self.model.meta_graph.signature_def.items():
            try:
                if set(signature.inputs) == IMAGE_INPUTS:
                    self.run(images, key)
                elif takes_pixels(signature):
                    self.run_pixels(blank_pixels(signature), key)
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
