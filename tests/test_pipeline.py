"""Annotations -> TFRecords -> tf.data batches, and the checks made before training."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from aocr.core.charset import EOS_ID, GO_ID, PAD_ID
from aocr.core.errors import AocrError
from aocr.core.params import ModelParams
from aocr.data.pipeline import training_dataset
from aocr.data.preprocess import preprocess_batch, preprocess_image
from aocr.data.records import expand_dataset_paths, iter_records, scan_labels
from tests.conftest import render_images, run_aocr, write_annotations

tf1 = tf.compat.v1


def batches(dataset):
    graph = tf.Graph()
    with graph.as_default():
        element = tf1.data.make_one_shot_iterator(dataset()).get_next()
        with tf1.Session() as session:
            out = []
            while True:
                try:
                    out.append(session.run(element))
                except tf.errors.OutOfRangeError:
                    return out


def test_round_trip_to_padded_batches(tmp_path, aocr_main):
    texts = ["A", "BCDEFG", "HI", "JKLM", "7", "XYZ12"]
    images = render_images(tmp_path / "imgs", texts)
    write_annotations(tmp_path / "a.txt", list(zip(images, texts, strict=True)))
    assert aocr_main("dataset", str(tmp_path / "a.txt"), str(tmp_path / "d.tfrecords")).returncode == 0
    params = ModelParams(max_width=300, max_height=32, max_prediction=6)
    scan = scan_labels([str(tmp_path / "d.tfrecords")], params)
    assert scan.usable == 6

    out = batches(lambda: training_dataset(scan, params, batch_size=4, num_epoch=1, seed=0))

    assert sum(len(b["widths"]) for b in out) == 6
    seen = set()
    for batch in out:
        n, height, width, channels = batch["images"].shape
        assert (height, channels) == (32, 1)
        assert width == batch["widths"].max() and width % 4 == 0  # padded to its own widest image
        assert batch["label_ids"].shape == (n, params.max_prediction + 2)
        for ids, image_width in zip(batch["label_ids"], batch["widths"], strict=True):
            assert ids[0] == GO_ID
            text = "".join(params.charset[i - 3] for i in ids[1:] if i > EOS_ID)
            end = 1 + len(text)
            assert ids[end] == EOS_ID and (ids[end + 1:] == PAD_ID).all()
            seen.add(text)
            assert 4 <= image_width <= params.image_width
    assert seen == set(texts)


def test_distortions_start_after_the_undistorted_images(tmp_path, aocr_main):
    texts = ["AB", "CDE", "FG", "HIJK"]
    images = render_images(tmp_path / "imgs", texts)
    write_annotations(tmp_path / "a.txt", list(zip(images, texts, strict=True)))
    assert aocr_main("dataset", str(tmp_path / "a.txt"), str(tmp_path / "d.tfrecords")).returncode == 0
    params = ModelParams(max_width=160, max_height=32, max_prediction=4)
    scan = scan_labels([str(tmp_path / "d.tfrecords")], params)
    plain = {}
    for batch in batches(lambda: training_dataset(scan, params, batch_size=1, num_epoch=1, seed=0)):
        plain[batch["label_ids"][0].tobytes()] = batch["images"][0]

    out = batches(lambda: training_dataset(scan, params, batch_size=1, num_epoch=3, seed=0,
                                           augment_level="strong", undistorted_first=6))

    unchanged = [np.array_equal(batch["images"][0], plain[batch["label_ids"][0].tobytes()]) for batch in out]
    assert unchanged[:6] == [True] * 6 and not any(unchanged[6:]) and len(unchanged) == 12


def test_labels_too_long_or_outside_charset_are_skipped_and_counted(tmp_path, aocr_main):
    images = render_images(tmp_path / "imgs", ["AB", "CD", "EF"])
    write_annotations(tmp_path / "a.txt", [(images[0], "AB"), (images[1], "TOOLONGLABEL"), (images[2], "a-b")])
    records = str(tmp_path / "d.tfrecords")
    assert aocr_main("dataset", str(tmp_path / "a.txt"), records, "--no-force-uppercase").returncode == 0
    params = ModelParams(max_prediction=5)
    scan = scan_labels([records], params)
    assert scan.keep.tolist() == [True, False, False]
    assert scan.too_long == ["TOOLONGLABEL"]
    assert "-" in scan.unknown_chars  # 'a' is upper-cased to 'A', '-' stays unknown


def test_truncated_file_keeps_the_records_before_the_damage(tmp_path, caplog):
    images = render_images(tmp_path / "imgs", ["AB", "CD", "EF"])
    write_annotations(tmp_path / "a.txt", list(zip(images, ["AB", "CD", "EF"], strict=True)))
    assert run_aocr("dataset", "a.txt", "d.tfrecords", cwd=tmp_path).returncode == 0
    data = (tmp_path / "d.tfrecords").read_bytes()
    (tmp_path / "d.tfrecords").write_bytes(data[:-20])
    params = ModelParams()
    scan = scan_labels([str(tmp_path / "d.tfrecords")], params)
    assert scan.readable_counts == [2] and scan.usable == 2
    assert "d.tfrecords" in caplog.text and "truncated" in caplog.text
    out = batches(lambda: training_dataset(scan, params, batch_size=8, num_epoch=1))
    assert sum(len(b["widths"]) for b in out) == 2


def test_wide_images_are_shrunk_not_dropped():
    params = ModelParams(max_width=160, max_height=60)
    wide = Image.new("L", (900, 30), 255)
    import io

    buffer = io.BytesIO()
    wide.save(buffer, "PNG")
    graph = tf.Graph()
    with graph.as_default(), tf1.Session() as session:
        image, width = session.run(preprocess_image(tf.constant(buffer.getvalue()), params))
    assert image.shape == (32, params.image_width, 1) and width == params.image_width


def test_batch_preprocessing_pads_to_the_widest_in_the_batch():
    params = ModelParams(max_width=400, max_height=32)
    import io

    encoded = []
    for size, fmt in (((40, 32), "PNG"), ((80, 32), "JPEG"), ((60, 16), "BMP"), ((20, 32), "GIF")):
        buffer = io.BytesIO()
        Image.new("RGB", size, (200, 200, 200)).save(buffer, fmt)
        encoded.append(buffer.getvalue())
    graph = tf.Graph()
    with graph.as_default(), tf1.Session() as session:
        images, widths = session.run(preprocess_batch(tf.constant(encoded), params))
    assert widths.tolist() == [40, 80, 120, 20]
    assert images.shape == (4, 32, 120, 1)
    assert np.allclose(images[0, :, 40:], 0)  # padding beyond the real width


def test_globs_and_comma_lists(tmp_path):
    for name in ("a.tfrecords", "b.tfrecords"):
        (tmp_path / name).write_bytes(b"")
    assert len(expand_dataset_paths(str(tmp_path / "*.tfrecords"))) == 2
    assert len(expand_dataset_paths(f"{tmp_path / 'a.tfrecords'},{tmp_path / 'b.tfrecords'}")) == 2
    with pytest.raises(AocrError, match="missing.tfrecords"):
        expand_dataset_paths(str(tmp_path / "missing.tfrecords"))
    assert list(iter_records([str(tmp_path / "a.tfrecords")])) == []
