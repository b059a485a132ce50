"""`aocr export`'s library (its flags: aocr.cli.export): the latest checkpoint -> a SavedModel for TensorFlow
Serving (DIR/VERSION/) or a frozen graph (DIR/frozen_graph.pb). Shapes and charset come from the model dir's
params.json."""

from __future__ import annotations

import io
import logging
import random
from typing import Any

import numpy as np
import tensorflow as tf

from aocr.core import defaults
from aocr.core import params as model_params
from aocr.core.errors import AocrError
from aocr.core.files import atomic_output, join, link_or_copy, sync_entries, sync_to_disk, temp_path_beside
from aocr.core.params import GREEDY, Decoding, ModelParams
from aocr.core.savedmodel import (
    BEAM_WIDTH_NAME,
    CHAR_PROBABILITIES_KEY,
    DECODER_NAME,
    FORMAT_VERSION_NAME,
    IMAGES_KEY,
    INPUT_KEY,
    N_BEST_SIGNATURE,
    PIXELS_SIGNATURE,
    PROBABILITIES_KEY,
    PROBABILITY_KEY,
    SERVING_TAGS,
    SIGNATURE,
    TEXT_KEY,
    TEXTS_KEY,
    WIDTHS_KEY,
    Loaded,
    load,
    version_path,
    versions,
)
from aocr.core.session import choose_checkpoint, restore, session_config, settle_decoding
from aocr.data.synthetic import load_font, render
from aocr.export.graph import INPUT_NAME, PROBABILITY_NAME, TEXT_NAME, ServingTensors, build_serving_graph
from aocr.export.tflite import export_tflite

tf1 = tf.compat.v1
log = logging.getLogger("aocr")

FROZEN_GRAPH = "frozen_graph.pb"


def sample_image() -> bytes:
    """A small rendered PNG to check that an export runs."""
    buffer = io.BytesIO()
    render("AB12", random.Random(0), load_font(None, 24), distort=False).save(buffer, "PNG")
    return buffer.getvalue()


def check_outputs(text: object, probability: object, what: str) -> None:
    if not isinstance(text, bytes) or not 0.0 <= float(probability) <= 1.0:
        raise AocrError(f"{what} gave unexpected outputs ({text!r}, {probability!r}); nothing was exported")


def check_candidates(texts: np.ndarray, probabilities: np.ndarray, char_probabilities: np.ndarray,
                     decoding: Decoding, params: ModelParams, what: str) -> None:
    """The n_best signature's answer for one image: [n_best], [n_best] and [n_best, max_prediction + 1]."""
    n = decoding.n_best
    if (texts.shape, probabilities.shape, char_probabilities.shape) != ((n,), (n,), (n, params.decoder_steps)):
        raise AocrError(f"{what} gave n-best outputs of shapes {texts.shape}, {probabilities.shape}, "
                        f"{char_probabilities.shape} for one image; nothing was exported")


def _frozen_session(checkpoint: str, params: ModelParams, decoding: Decoding):
    graph = tf.Graph()
    with graph.as_default():
        tensors = build_serving_graph(params, decoding)
        saver = tf1.train.Saver()
    session = tf1.Session(graph=graph, config=session_config())
    restore(session, saver, checkpoint)
    return session, tensors


def _signatures(tensors: ServingTensors) -> dict:
    """serving_default (text and probability per image) and n_best (the candidates), on image bytes;
    pixels (text and probability) on preprocessed images."""
    inputs = {INPUT_KEY: tensors.image_bytes}
    return {
        SIGNATURE: tf1.saved_model.predict_signature_def(
            inputs=inputs, outputs={TEXT_KEY: tensors.text, PROBABILITY_KEY: tensors.probability}),
        N_BEST_SIGNATURE: tf1.saved_model.predict_signature_def(
            inputs=inputs, outputs={TEXTS_KEY: tensors.texts, PROBABILITIES_KEY: tensors.probabilities,
                                    CHAR_PROBABILITIES_KEY: tensors.char_probabilities}),
        PIXELS_SIGNATURE: tf1.saved_model.predict_signature_def(
            inputs={IMAGES_KEY: tensors.pixels, WIDTHS_KEY: tensors.widths},
            outputs={TEXT_KEY: tensors.pixel_text, PROBABILITY_KEY: tensors.pixel_probability}),
    }


def export_savedmodel(checkpoint: str, params: ModelParams, export_dir: str, version: int | None,
                      force: bool, decoding: Decoding = GREEDY) -> str:
    """Write DIR/VERSION (the next free version by default) and return its path."""
    existing = versions(export_dir)
    version = version if version is not None else (existing[-1] + 1 if existing else 1)
    target = version_path(export_dir, version)
    if tf.io.gfile.exists(target) and not force:
        raise AocrError(f"{target} exists; pass --force to replace it, or --version N for another version")
    # The version is built beside its final name (a name TF Serving does not load) and checked there, so a
    # failed export leaves the old version as it was. Locally it is then renamed into place; object stores
    # (gs://) and ram:// cannot rename a directory, so there its files are copied over the old ones.
    build_dir = temp_path_beside(target)
    session, tensors = _frozen_session(checkpoint, params, decoding)
    try:
        with session:
            builder = tf1.saved_model.Builder(build_dir)
            builder.add_meta_graph_and_variables(
                session, list(SERVING_TAGS), signature_def_map=_signatures(tensors),
                clear_devices=True, strip_default_attrs=True)
            builder.save()
        check_savedmodel(build_dir, params, decoding)
        if "://" in export_dir:
            copy_directory_over(build_dir, target)
        else:
            sync_to_disk(build_dir)
            replace_directory(build_dir, target)
            sync_entries(export_dir)
    finally:
        if tf.io.gfile.exists(build_dir):
            tf.io.gfile.rmtree(build_dir)
    return target


def copy_directory_over(new: str, target: str) -> None:
    """Make `target` hold the files of the directory `new` on a file system without directory renames: each file
    replaces its old namesake whole (aocr.core.files.link_or_copy), then the old files `new` lacks go."""
    copied = set()
    for directory, _, names in tf.io.gfile.walk(new):
        relative = directory[len(new):].lstrip("/")
        tf.io.gfile.makedirs(join(target, relative))
        for name in names:
            link_or_copy(join(directory, name), join(target, relative, name))
            copied.add(join(relative, name))
    for directory, _, names in tf.io.gfile.walk(target):
        relative = directory[len(target):].lstrip("/")
        for name in names:
            if join(relative, name) not in copied:
                tf.io.gfile.remove(join(directory, name))


def replace_directory(new: str, target: str) -> None:
    """Rename the directory `new` to `target`. An old `target` is first renamed aside and removed last, so that
    at every moment the old version or the new one is whole under some name, and a failed rename puts the
    old one back."""
    old = None
    if tf.io.gfile.exists(target):
        old = temp_path_beside(target)
        tf.io.gfile.rename(target, old)
    try:
        tf.io.gfile.rename(new, target)
    except BaseException:
        if old is not None:
            tf.io.gfile.rename(old, target)
        raise
    if old is not None:
        tf.io.gfile.rmtree(old)


def check_savedmodel(path: str, params: ModelParams, decoding: Decoding) -> None:
    """Load a SavedModel in a clean graph, as TF Serving would, and run its signatures on an image."""
    loaded = load(path)
    try:
        outputs, n_best = loaded.output_names, loaded.signature_outputs(N_BEST_SIGNATURE)
        text, probability, *candidates = loaded.session.run(
            [outputs[TEXT_KEY], outputs[PROBABILITY_KEY], n_best[TEXTS_KEY], n_best[PROBABILITIES_KEY],
             n_best[CHAR_PROBABILITIES_KEY]], {loaded.input_name: sample_image()})
        beam_width, decoder = loaded.beam_width, loaded.decoder
        pixel_text = _pixels_answer(loaded)
    finally:
        loaded.close()
    check_outputs(text, probability, f"the SavedModel in {path}")
    if pixel_text != text:
        raise AocrError(f"the SavedModel in {path} reads {pixel_text!r} from the pixels of an image it reads as "
                        f"{text!r} from its bytes; nothing was exported")
    check_candidates(*candidates, decoding, params, f"the SavedModel in {path}")
    if (beam_width, decoder) != (decoding.beam_width, decoding.decoder or params.decoder):
        raise AocrError(f"the SavedModel in {path} decodes with beam width {beam_width} and the {decoder} decoder, "
                        f"not {decoding.beam_width} and {decoding.decoder}; nothing was exported")


def _pixels_answer(loaded: Loaded) -> object:
    """The pixels signature's text for the sample image, preprocessed by the graph's own ops."""
    inputs, outputs = loaded.signature_inputs(PIXELS_SIGNATURE), loaded.signature_outputs(PIXELS_SIGNATURE)
    pixels, widths = loaded.session.run([inputs[IMAGES_KEY], inputs[WIDTHS_KEY]],
                                        {loaded.input_name: [sample_image()]})
    return loaded.session.run(outputs[TEXT_KEY], {inputs[IMAGES_KEY]: pixels, inputs[WIDTHS_KEY]: widths})[0]


def export_frozen_graph(checkpoint: str, params: ModelParams, export_dir: str, force: bool,
                        decoding: Decoding = GREEDY) -> str:
    """Write DIR/frozen_graph.pb with the variables folded into constants and return its path."""
    target = join(export_dir, FROZEN_GRAPH)
    if tf.io.gfile.exists(target) and not force:
        raise AocrError(f"{target} exists; pass --force to replace it")
    session, _ = _frozen_session(checkpoint, params, decoding)
    with session:
        graph_def = tf1.graph_util.convert_variables_to_constants(
            session, session.graph.as_graph_def(),
            [TEXT_NAME, PROBABILITY_NAME, BEAM_WIDTH_NAME, DECODER_NAME, FORMAT_VERSION_NAME])
    for node in graph_def.node:
        node.device = ""
    with atomic_output(target) as temp:
        with tf.io.gfile.GFile(temp, "wb") as f:
            f.write(graph_def.SerializeToString())
        check_frozen_graph(temp)
    return target


def check_frozen_graph(path: str) -> None:
    """Import a frozen graph in a clean graph and run it on an image."""
    graph_def = tf1.GraphDef()
    with tf.io.gfile.GFile(path, "rb") as f:
        graph_def.ParseFromString(f.read())
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    with tf1.Session(graph=graph) as session:
        text, probability = session.run([f"{TEXT_NAME}:0", f"{PROBABILITY_NAME}:0"],
                                        {f"{INPUT_NAME}:0": sample_image()})
    check_outputs(text, probability, f"the frozen graph {path}")


def export_model(model_dir: str, explicit: dict[str, Any], export_path: str,
                 export_format: str = defaults.EXPORT_FORMAT, version: int | None = None, force: bool = False,
                 checkpoint: str = defaults.CHECKPOINT, decoding: Decoding = GREEDY) -> str:
    """`aocr export`'s work: model_dir's checkpoint ("best", "latest" or a path) -> export_path as export_format
    ("savedmodel", "frozengraph" or "tflite"); returns the path written. explicit: the ModelParams fields given,
    resolved (aocr.data.survey.resolve_flags), checked against params.json. version: savedmodel only."""
    params = model_params.resolve(explicit, model_params.require(model_dir), model_dir)
    checkpoint = choose_checkpoint(model_dir, checkpoint)
    decoding = settle_decoding(decoding, params, model_dir)
    if export_format == "savedmodel":
        path = export_savedmodel(checkpoint, params, export_path, version, force, decoding)
        log.info("exported %s as SavedModel %s (signature %s: input 'input', outputs 'output', 'probability'; "
                 "signature %s: outputs 'texts', 'probabilities', 'char_probabilities' of %d candidates; "
                 "the %s decoder, beam width %d)", checkpoint, path, SIGNATURE, N_BEST_SIGNATURE, decoding.n_best,
                 decoding.decoder, decoding.beam_width)
        log.info("serve it with `aocr serve %s` or `tensorflow_model_server --rest_api_port=8501 "
                 "--model_name=aocr --model_base_path=%s`", export_path, export_path)
    elif version is not None:
        raise AocrError("--version applies to --format savedmodel only")
    elif export_format == "tflite":
        path = export_tflite(checkpoint, params, export_path, force, decoding, sample_image())
        log.info("exported %s as TensorFlow Lite %s (inputs 'images' float32 [1, %d, %d, %d] and 'widths' int32 [1], "
                 "outputs 'ids' and 'probabilities' per decoder step; the charset in params.json beside it)",
                 checkpoint, path, params.image_height, params.image_width, params.channels)
    else:
        path = export_frozen_graph(checkpoint, params, export_path, force, decoding)
        log.info("exported %s as frozen graph %s (input %s:0, outputs %s:0 and %s:0; beam width %d in %s:0)",
                 checkpoint, path, INPUT_NAME, TEXT_NAME, PROBABILITY_NAME, decoding.beam_width, BEAM_WIDTH_NAME)
    return path
