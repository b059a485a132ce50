"""`aocr export --format tflite`: the greedy pixels model as a TensorFlow Lite file of builtin ops only.

DIR/model.tflite reads one image at a time at the model's full input size: input `images` float32
[1, H, image_width, C] (resized as the README's recipe does, 0-255, zero-padded on the right to
params.image_width) and `widths` int32 [1] (the width before the padding); outputs `ids` int32 [1, S]
(each decoder step's class: 0 PAD, 1 GO, 2 EOS, 3 + i the charset's i-th character) and
`probabilities` float32 [1, S] (each step's chosen class's probability). DIR/params.json beside it
holds the charset and the shapes; text_of() spells an answer.

Why these limits: TensorFlow Lite lowers the decoder's loops only when every shape in them is static,
the encoder runs in plain ops as in every inference graph (aocr.model.lstm_loop), and
strings would need the select TF ops (Flex), which the `tensorflow` pip package's interpreter no
longer includes.
"""

from __future__ import annotations

import warnings

import numpy as np
import tensorflow as tf

from aocr.core import params as model_params
from aocr.core.charset import EOS_ID
from aocr.core.errors import AocrError
from aocr.core.files import atomic_output, join
from aocr.core.params import Decoding, ModelParams
from aocr.core.session import restore, session_config
from aocr.data.preprocess import pad_to_width, preprocess_image
from aocr.inference.recognizer import Recognizer
from aocr.model.model import greedy_reading

tf1 = tf.compat.v1

TFLITE_FILE = "model.tflite"


def _convert(checkpoint: str, params: ModelParams, decoder: str) -> bytes:
    graph = tf.Graph()
    with graph.as_default():
        pixels = tf1.placeholder(tf.float32, [1, params.image_height, params.image_width, params.channels],
                                 name="images")
        widths = tf1.placeholder(tf.int32, [1], name="widths")
        ids, probabilities = greedy_reading(pixels, widths, params, decoder)
        ids = tf.identity(ids, name="ids")
        probabilities = tf.identity(probabilities, name="probabilities")
        saver = tf1.train.Saver()
    with tf1.Session(graph=graph, config=session_config()) as session:
        restore(session, saver, checkpoint)
        converter = tf1.lite.TFLiteConverter.from_session(session, [pixels, widths], [ids, probabilities])
        try:
            return converter.convert()
        except Exception as e:  # the converter raises several kinds, each with its own explanation
            raise AocrError(f"TensorFlow Lite could not convert the model: {str(e).splitlines()[0]}") from None


def text_of(ids: np.ndarray, probabilities: np.ndarray, params: ModelParams) -> tuple[str, float]:
    """The text and probability of one answer: ids int32 [S] and probabilities float32 [S] of model.tflite."""
    table = params.char_table.id_table()
    ends = [step for step, class_id in enumerate(ids) if class_id == EOS_ID]
    length = ends[0] if ends else len(ids)
    text = "".join(table[class_id] for class_id in ids[:length])
    return text, float(np.prod(probabilities[:length + 1], dtype=np.float64))


def read_tflite(path: str, images: list[bytes], params: ModelParams) -> list[tuple[str, float]]:
    """(text, probability) of each encoded image through a model.tflite, one image per invocation."""
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that LiteRT's will replace it; it reads the same
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=path)
    interpreter.allocate_tensors()
    inputs = {detail["name"]: detail["index"] for detail in interpreter.get_input_details()}
    outputs = {detail["name"]: detail["index"] for detail in interpreter.get_output_details()}
    answers = []
    for data in images:
        image, width = preprocess_image(tf.constant(data), params)
        interpreter.set_tensor(inputs["images"], pad_to_width(image, width, params.image_width).numpy()[None])
        interpreter.set_tensor(inputs["widths"], np.array([width.numpy()], np.int32))
        interpreter.invoke()
        answers.append(text_of(interpreter.get_tensor(outputs["ids"])[0],
                               interpreter.get_tensor(outputs["probabilities"])[0], params))
    return answers


def export_tflite(checkpoint: str, params: ModelParams, export_dir: str, force: bool, decoding: Decoding,
                  sample: bytes) -> str:
    """Write DIR/model.tflite and DIR/params.json, after checking that the converted model reads `sample`
    (encoded image bytes) as the model's own graph does; returns the .tflite path."""
    if decoding.beam_width > 1 or decoding.lexicon is not None or decoding.decoder == "joint":
        raise AocrError("--format tflite decodes greedily: drop --beam-width and --lexicon, and pass --decoder "
                        "attention or ctc")
    target = join(export_dir, TFLITE_FILE)
    if tf.io.gfile.exists(target) and not force:
        raise AocrError(f"{target} exists; pass --force to replace it")
    model = _convert(checkpoint, params, decoding.decoder or params.decoder)
    with atomic_output(target) as temp:
        with tf.io.gfile.GFile(temp, "wb") as f:
            f.write(model)
        [(text, _)] = read_tflite(temp, [sample], params)
        expected = _graph_answer(checkpoint, params, sample, decoding)
        if text != expected:
            raise AocrError(f"the TensorFlow Lite model reads {text!r} where the model reads {expected!r}; "
                            "nothing was exported")
    model_params.save(export_dir, params)
    return target


def _graph_answer(checkpoint: str, params: ModelParams, sample: bytes, decoding: Decoding) -> str:
    recognizer = Recognizer.load("", params, checkpoint=checkpoint, decoding=decoding)
    try:
        [result] = recognizer.recognize([sample], 1)
    finally:
        recognizer.close()
    return result.text
