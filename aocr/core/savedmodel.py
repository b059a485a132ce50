"""What `aocr export` writes and `aocr serve` reads: the SavedModel's names, its version folders, loading.

Kept apart from the model and the export verb so that serving needs only TensorFlow and this module:

    DIR/1/saved_model.pb, DIR/1/variables/   (TF Serving's layout: one integer folder per version)
    signature "serving_default": input "input" (DT_STRING image bytes, a scalar or [N]),
                                 outputs "output" (DT_STRING text) and "probability" (DT_DOUBLE)
    signature "n_best":          the same input; outputs "texts" (DT_STRING [N, n]), "probabilities"
                                 (DT_DOUBLE [N, n]) and "char_probabilities" (DT_FLOAT [N, n, S]):
                                 each image's n best candidates, best first, S = max_prediction + 1
    signature "pixels":          inputs "images" (DT_FLOAT [N, H, W, C], H params.json's image_height, 0-255,
                                 zero-padded on the right) and "widths" (DT_INT32 [N], before the
                                 padding); outputs "output" and "probability" as serving_default
    tensor "beam_width:0":       the beam width the graph decodes with (int32; absent: 1, greedy)
    tensor "decoding:0":         the head that reads, "attention", "ctc" or "joint" (string; absent: attention)
    tensor "format_version:0":   EXPORT_FORMAT_VERSION when it was written (int32; absent: 1). A newer format
                                 than this module knows is refused with a message; older ones read as above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from aocr.core.errors import AocrError
from aocr.core.files import join
from aocr.core.session import with_constant_weights

tf1 = tf.compat.v1

SIGNATURE = "serving_default"
INPUT_KEY = "input"
TEXT_KEY = "output"
PROBABILITY_KEY = "probability"
SERVING_TAGS = (tf1.saved_model.tag_constants.SERVING,)
N_BEST_SIGNATURE = "n_best"
TEXTS_KEY = "texts"
PROBABILITIES_KEY = "probabilities"
CHAR_PROBABILITIES_KEY = "char_probabilities"
BEAM_WIDTH_NAME = "beam_width"
DECODER_NAME = "decoding"  # not "decoder", the attention decoder's variable scope
FORMAT_VERSION_NAME = "format_version"
# 1: exports without the tensor (some without beam_width:0 or decoding:0 either); 2: format_version:0 added.
EXPORT_FORMAT_VERSION = 2
PIXELS_SIGNATURE = "pixels"
IMAGES_KEY = "images"
WIDTHS_KEY = "widths"


def is_version_number(text: str) -> bool:
    """Whether `text` is a version number: ASCII digits only (str.isdigit alone also takes '²', which int refuses)."""
    return text.isascii() and text.isdigit()


def versions(export_dir: str) -> list[int]:
    """Version directories under an export dir, oldest first (TF Serving's layout)."""
    if not tf.io.gfile.isdir(export_dir):
        return []
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(export_dir))
    return sorted(int(name) for name in names if is_version_number(name))


def version_path(export_dir: str, version: int) -> str:
    """DIR/VERSION."""
    return join(export_dir, str(version))


@dataclass
class Loaded:
    """A SavedModel loaded into its own graph and session, with its `serving_default` signature."""

    path: str
    session: tf1.Session
    meta_graph: Any  # MetaGraphDef proto
    signature: Any  # SignatureDef proto

    @property
    def input_name(self) -> str:
        """The graph tensor fed with image bytes."""
        return self.signature.inputs[INPUT_KEY].name

    @property
    def output_names(self) -> dict[str, str]:
        """`serving_default`'s output key -> graph tensor name."""
        return self.signature_outputs(SIGNATURE)

    def signature_inputs(self, name: str) -> dict[str, str]:
        """Input key -> graph tensor name of the named signature; {} if it has none."""
        signature = self.meta_graph.signature_def.get(name)
        return {key: info.name for key, info in signature.inputs.items()} if signature is not None else {}

    def signature_outputs(self, name: str) -> dict[str, str]:
        """Output key -> graph tensor name of the named signature (e.g. N_BEST_SIGNATURE); {} if it has none."""
        signature = self.meta_graph.signature_def.get(name)
        return {key: info.name for key, info in signature.outputs.items()} if signature is not None else {}

    @property
    def beam_width(self) -> int:
        """The beam width fixed at export time; 1 (greedy) for an export made before it was stored."""
        try:
            tensor = self.session.graph.get_tensor_by_name(f"{BEAM_WIDTH_NAME}:0")
        except KeyError:
            return 1
        return int(self.session.run(tensor))

    @property
    def decoder(self) -> str:
        """The reading fixed at export time; "attention" for an export made before it was stored."""
        try:
            tensor = self.session.graph.get_tensor_by_name(f"{DECODER_NAME}:0")
        except KeyError:
            return "attention"
        return self.session.run(tensor).decode("utf-8")

    @property
    def format_version(self) -> int:
        """The export's format (EXPORT_FORMAT_VERSION when it was written); 1 for one made before it was stored."""
        return _stored_format(self.session.graph, self.session)

    def close(self) -> None:
        """Release the session."""
        self.session.close()


def _stored_format(graph: tf.Graph, session: tf1.Session) -> int:
    try:
        tensor = graph.get_tensor_by_name(f"{FORMAT_VERSION_NAME}:0")
    except KeyError:
        return 1
    return int(session.run(tensor))


def load(path: str, config: tf1.ConfigProto | None = None) -> Loaded:
    """Load DIR/VERSION as TF Serving does (serve tag) and find its `serving_default` signature. The
    session runs the graph with its variables as constants (aocr.core.session.with_constant_weights).

    A directory that is not a SavedModel, or one without the signature or its input, is an AocrError.
    """
    graph = tf.Graph()
    session = tf1.Session(graph=graph, config=config)
    try:
        with graph.as_default():
            meta = tf1.saved_model.loader.load(session, list(SERVING_TAGS), path)
    except (OSError, RuntimeError, tf.errors.OpError) as e:
        session.close()
        message = getattr(e, "message", None) or str(e)
        raise AocrError(f"{path}: not a loadable SavedModel ({message}); export one with `aocr export`") from None
    signature = meta.signature_def.get(SIGNATURE)
    if signature is None or INPUT_KEY not in signature.inputs:
        session.close()
        raise AocrError(f"{path}: has no '{SIGNATURE}' signature with an '{INPUT_KEY}' input; "
                        "export it with `aocr export`")
    version = _stored_format(graph, session)
    if version > EXPORT_FORMAT_VERSION:
        session.close()
        raise AocrError(f"{path}: exported by a newer aocr (format {version}; this one reads formats up to "
                        f"{EXPORT_FORMAT_VERSION}): upgrade with `pip install --upgrade aocr`, or export the model "
                        "again with this aocr")
    return Loaded(path, with_constant_weights(session, _kept_names(meta, graph), config), meta, signature)


def _kept_names(meta: Any, graph: tf.Graph) -> list[str]:
    """Every signature's outputs, and the beam width and decoder where the graph stores them."""
    names = [info.name for signature in meta.signature_def.values() for info in signature.outputs.values()]
    stored = [op.name for op in graph.get_operations()
              if op.name in (BEAM_WIDTH_NAME, DECODER_NAME, FORMAT_VERSION_NAME)]
    return names + stored
