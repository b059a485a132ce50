"""`aocr export`: SavedModels TF Serving loads, frozen graphs with the original's tensor names,
both answering exactly as `aocr predict` does."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from aocr.core import params as model_params
from aocr.core import savedmodel
from aocr.core.errors import AocrError
from aocr.export.tflite import read_tflite
from tests.conftest import example_pixels_client, params_limit, run_aocr


@pytest.fixture(scope="module")
def exported(trained_model, tmp_path_factory):
    """The trained model exported both ways, with no shape flag repeated."""
    directory = tmp_path_factory.mktemp("exported")
    for fmt in ("savedmodel", "frozengraph"):
        result = run_aocr("export", str(directory), "--format", fmt, "--model-dir", str(trained_model),
                          cwd=trained_model.parent)
        assert result.returncode == 0, result.stderr
    return directory


@pytest.fixture(scope="module")
def predicted(trained_model, digits_set):
    """What `aocr predict` answers for the first 12 images (PNG)."""
    paths = [str(p) for p in digits_set.images[:12]]
    result = run_aocr("predict", *paths, "--model-dir", str(trained_model), "--precision", "float32",
                      cwd=trained_model.parent)
    assert result.returncode == 0, result.stderr
    return [(line.split("\t")[1], float(line.split("\t")[2])) for line in result.stdout.splitlines()]


def run_in_fresh_process(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_savedmodel_layout_and_signature(exported):
    assert sorted(p.name for p in exported.iterdir()) == ["1", "frozen_graph.pb"]
    assert (exported / "1" / "saved_model.pb").exists() and (exported / "1" / "variables").is_dir()
    out = run_in_fresh_process(f"""
        import tensorflow as tf
        loaded = tf.saved_model.load("{exported / '1'}")
        signature = loaded.signatures["serving_default"]
        print(sorted(signature.structured_input_signature[1]), sorted(signature.structured_outputs))
        print(signature.structured_input_signature[1]["input"].dtype.name,
              signature.structured_outputs["output"].dtype.name, signature.structured_outputs["probability"].dtype.name)
    """)
    assert out.splitlines() == ["['input'] ['output', 'probability']", "string string float64"]


def test_savedmodel_answers_like_predict_for_scalar_batch_png_and_jpeg(exported, digits_set, predicted):
    out = run_in_fresh_process(f"""
        import io, json
        import tensorflow as tf
        from PIL import Image
        paths = {[str(p) for p in digits_set.images[:12]]!r}
        pngs = [open(p, "rb").read() for p in paths]
        serve = tf.saved_model.load("{exported / '1'}").signatures["serving_default"]
        batch = serve(input=tf.constant(pngs))
        scalar = serve(input=tf.constant(pngs[0]))
        jpeg = io.BytesIO()
        Image.open(paths[0]).save(jpeg, "JPEG", quality=95)
        from_jpeg = serve(input=tf.constant(jpeg.getvalue()))
        print(json.dumps({{
            "batch": [[t.decode(), float(p)] for t, p in zip(batch["output"].numpy(), batch["probability"].numpy())],
            "scalar_shape": scalar["output"].shape.rank, "scalar": scalar["output"].numpy().decode(),
            "jpeg": from_jpeg["output"].numpy().decode()}}))
    """)
    import json

    answers = json.loads(out)
    assert [text for text, _ in answers["batch"]] == [text for text, _ in predicted]
    assert all(abs(a[1] - b[1]) < 1e-4 for a, b in zip(answers["batch"], predicted, strict=True))
    assert answers["scalar_shape"] == 0 and answers["scalar"] == predicted[0][0]
    assert answers["jpeg"] == predicted[0][0]


def test_frozen_graph_has_the_original_tensor_names(exported, digits_set, predicted):
    out = run_in_fresh_process(f"""
        import tensorflow as tf
        tf1 = tf.compat.v1
        graph_def = tf1.GraphDef()
        graph_def.ParseFromString(open("{exported / 'frozen_graph.pb'}", "rb").read())
        assert not any(node.op.startswith("Variable") for node in graph_def.node)
        graph = tf.Graph()
        with graph.as_default():
            tf.graph_util.import_graph_def(graph_def, name="")
        with tf1.Session(graph=graph) as session:
            for path in {[str(p) for p in digits_set.images[:3]]!r}:
                text, probability = session.run(["prediction:0", "probability:0"],
                                                {{"input_image_as_bytes:0": open(path, "rb").read()}})
                print(text.decode(), probability)
    """)
    texts = [line.split()[0] for line in out.splitlines()]
    assert texts == [text for text, _ in predicted[:3]]


def test_versions_are_numbered_and_never_overwritten(trained_model, tmp_path, aocr_main):
    base = ["export", str(tmp_path / "exp"), "--model-dir", str(trained_model)]
    assert aocr_main(*base).returncode == 0
    assert aocr_main(*base).returncode == 0
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["1", "2"]  # no temporary left behind
    refused = aocr_main(*base, "--version", "2")
    assert refused.returncode != 0 and "--force" in refused.stderr
    assert aocr_main(*base, "--version", "7").returncode == 0
    assert aocr_main(*base, "--version", "2", "--force").returncode == 0
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["1", "2", "7"]


def test_export_with_a_contradicting_flag_is_refused(trained_model, tmp_path, aocr_main):
    result = aocr_main("export", str(tmp_path / "exp"), "--model-dir", str(trained_model), "--max-width", "160")
    assert result.returncode != 0 and "--max-width" in result.stderr
    assert not (tmp_path / "exp").exists()


def test_export_without_a_model_says_how_to_get_one(tmp_path, aocr_main):
    result = aocr_main("export", str(tmp_path / "exp"), "--model-dir", str(tmp_path / "none"))
    assert result.returncode != 0 and "aocr train" in result.stderr and "Traceback" not in result.stderr


def test_pixels_signature_takes_the_example_clients_preprocessing(exported, digits_set, trained_model, tmp_path):
    paths = [str(p) for p in digits_set.images[:4]]
    for name, size, color in (("small-color.png", (30, 14), (200, 40, 90)), ("wide.png", (900, 40), (10, 120, 10))):
        image = Image.new("RGB", size, (240, 230, 180))
        ImageDraw.Draw(image).text((2, 1), "4711", fill=color)
        image.save(tmp_path / name)
        paths.append(str(tmp_path / name))
    params = json.loads((trained_model / "params.json").read_text(encoding="utf-8"))
    pixels, widths = example_pixels_client().prepare([Image.open(path) for path in paths], params["image_height"],
                                                     params["channels"], params_limit(params))
    loaded = savedmodel.load(str(exported / "1"))
    try:
        inputs, outputs = loaded.signature_inputs("pixels"), loaded.signature_outputs("pixels")
        encoded = [Path(path).read_bytes() for path in paths]
        graph_pixels, graph_widths = loaded.session.run([inputs["images"], inputs["widths"]],
                                                        {loaded.input_name: encoded})
        from_pixels = loaded.session.run(outputs["output"], {inputs["images"]: pixels, inputs["widths"]: widths})
        from_bytes = loaded.session.run(loaded.output_names["output"], {loaded.input_name: encoded})
    finally:
        loaded.close()
    assert widths.tolist() == graph_widths.tolist() and widths[-1] == params_limit(params) and widths[-2] > 30
    assert pixels.shape == graph_pixels.shape
    assert np.abs(pixels - graph_pixels).max() <= 0.01
    assert from_pixels.tolist() == from_bytes.tolist()


def test_tflite_export_reads_as_predict_does(trained_model, digits_set, predicted, tmp_path, aocr_main):
    exported = aocr_main("export", str(tmp_path / "lite"), "--format", "tflite", "--model-dir", str(trained_model))
    assert exported.returncode == 0, exported.stderr
    assert sorted(p.name for p in (tmp_path / "lite").iterdir()) == ["model.tflite", "params.json"]
    stored = model_params.require(str(tmp_path / "lite"))
    answers = read_tflite(str(tmp_path / "lite" / "model.tflite"), [p.read_bytes() for p in digits_set.images[:12]],
                          stored)
    assert [text for text, _ in answers] == [text for text, _ in predicted]
    assert all(abs(a[1] - b[1]) < 1e-3 for a, b in zip(answers, predicted, strict=True))
    refused = aocr_main("export", str(tmp_path / "beam"), "--format", "tflite", "--model-dir", str(trained_model),
                        "--beam-width", "3")
    assert refused.returncode == 1 and "decodes greedily" in refused.stderr


def test_a_savedmodel_whose_answers_come_from_a_lookup_table_keeps_its_contents(tmp_path):
    """Loading folds variables into constants; a lookup table's contents are no variable, and a SavedModel
    (not ours) that spells its answers through a checkpointed table must still answer with them."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.string, [None])
        table = tf1.lookup.experimental.MutableHashTable(tf.int64, tf.string, default_value="empty", checkpoint=True)
        weight = tf1.get_variable("weight", [], initializer=tf1.constant_initializer(0.5), dtype=tf.float64)
        text = table.lookup(tf.cast(tf.strings.length(images), tf.int64))
        probability = weight * tf.ones_like(tf.strings.length(images), tf.float64)
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            session.run(table.insert(tf.constant([3], tf.int64), ["ABC"]))
            builder = tf1.saved_model.Builder(str(tmp_path / "1"))
            signature = tf1.saved_model.predict_signature_def(
                {savedmodel.INPUT_KEY: images}, {savedmodel.TEXT_KEY: text, savedmodel.PROBABILITY_KEY: probability})
            builder.add_meta_graph_and_variables(session, list(savedmodel.SERVING_TAGS),
                                                 signature_def_map={savedmodel.SIGNATURE: signature})
            builder.save()
    loaded = savedmodel.load(str(tmp_path / "1"))
    try:
        text, probability = loaded.session.run([loaded.output_names[savedmodel.TEXT_KEY],
                                                loaded.output_names[savedmodel.PROBABILITY_KEY]],
                                               {loaded.input_name: ["abc"]})
    finally:
        loaded.close()
    assert list(text) == [b"ABC"] and list(probability) == [0.5]


def _bare_savedmodel(path, format_version=None):
    """A SavedModel with aocr's signature that answers "ABC", storing `format_version` as an export does."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.string, [None])
        text = tf.fill(tf.shape(images), "ABC")
        probability = tf.ones(tf.shape(images), tf.float64)
        if format_version is not None:
            tf.constant(format_version, tf.int32, name=savedmodel.FORMAT_VERSION_NAME)
        with tf1.Session() as session:
            builder = tf1.saved_model.Builder(str(path))
            signature = tf1.saved_model.predict_signature_def(
                {savedmodel.INPUT_KEY: images}, {savedmodel.TEXT_KEY: text, savedmodel.PROBABILITY_KEY: probability})
            builder.add_meta_graph_and_variables(session, list(savedmodel.SERVING_TAGS),
                                                 signature_def_map={savedmodel.SIGNATURE: signature})
            builder.save()


def test_an_export_states_its_format_and_one_from_a_newer_aocr_is_refused_with_what_to_do(exported, tmp_path):
    loaded = savedmodel.load(savedmodel.version_path(str(exported), savedmodel.versions(str(exported))[-1]))
    try:
        assert loaded.format_version == savedmodel.EXPORT_FORMAT_VERSION
    finally:
        loaded.close()
    _bare_savedmodel(tmp_path / "old" / "1")
    older = savedmodel.load(str(tmp_path / "old" / "1"))
    assert (older.format_version, older.beam_width, older.decoder) == (1, 1, "attention")  # read as it was written
    older.close()
    _bare_savedmodel(tmp_path / "new" / "1", savedmodel.EXPORT_FORMAT_VERSION + 1)
    with pytest.raises(AocrError, match=r"exported by a newer aocr .* `pip install --upgrade aocr`"):
        savedmodel.load(str(tmp_path / "new" / "1"))


def test_an_export_reads_in_python_as_predict_does_and_names_what_it_cannot(exported, predicted, trained_model,
                                                                             digits_set, tmp_path):
    """open_recognizer: an export (read through its n_best signature) or a model dir, with a bad image among
    the good ones."""
    from aocr.inference.exported import ExportedRecognizer, open_recognizer
    from aocr.inference.recognizer import Recognizer, Unreadable

    images = [path.read_bytes() for path in digits_set.images[:12]]
    damaged = images[0][:-40] + bytes(28) + images[0][-12:]  # its header reads, its pixel data do not
    with open_recognizer(str(exported)) as recognizer:
        assert isinstance(recognizer, ExportedRecognizer)
        results = recognizer.recognize(images[:6] + [b"not an image", damaged] + images[6:], batch_size=5)
    refused, undecoded = results.pop(6), results.pop(6)
    assert isinstance(refused, Unreadable) and "not a readable image" in refused.reason
    assert isinstance(undecoded, Unreadable) and "cannot decode the image" in undecoded.reason
    assert [result.text for result in results] == [text for text, _ in predicted]
    assert [result.probability for result in results] == pytest.approx([p for _, p in predicted], abs=1e-5)
    for result in results:
        assert len(result.char_probabilities) == len(result.text) and result.candidates[0].text == result.text
        assert result.attention is None and result.width is None
    with open_recognizer(str(trained_model)) as recognizer:
        assert isinstance(recognizer, Recognizer)
        assert recognizer.recognize(images[:1], batch_size=1)[0].text == predicted[0][0]
    with pytest.raises(AocrError, match="aocr export"):
        ExportedRecognizer.load(str(tmp_path))
    with pytest.raises(AocrError, match=r"no version 7; there are \[1\]"):
        ExportedRecognizer.load(str(exported), version=7)
