"""Every path through tf.io.gfile: dataset, train, test, predict and export with all paths under TF's
in-memory ram:// filesystem (which stands in for gs:// on a cloud job). ram:// lives in one process,
so the real command line runs in-process through aocr.cli.main."""

import io

import tensorflow as tf

from aocr.cli import main
from aocr.core.savedmodel import load
from aocr.data.synthetic import load_font, random_text, render
from tests.conftest import TINY_SHAPE


def test_dataset_train_test_predict_export_all_in_ram(capsys):
    import random

    root = "ram://aocr-roundtrip"
    rng = random.Random(3)
    lines = []
    for number in range(24):
        text = random_text(rng, 2, 4, "0123456789")
        buffer = io.BytesIO()
        render(text, rng, load_font(None, 24), distort=False).save(buffer, "PNG")
        path = f"{root}/images/{number}.png"
        tf.io.gfile.makedirs(f"{root}/images")
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(buffer.getvalue())
        lines.append(f"{path} {text}\n")
    with tf.io.gfile.GFile(f"{root}/annotations.txt", "w") as f:
        f.write("".join(lines))
    no_log = ["--log-path", ""]

    assert main(["dataset", f"{root}/annotations.txt", f"{root}/data.tfrecords", *no_log]) == 0
    assert main(["train", f"{root}/data.tfrecords", "--model-dir", f"{root}/model", *TINY_SHAPE,
                 "--batch-size", "8", "--max-steps", "2", "--steps-per-checkpoint", "1", *no_log]) == 0
    assert tf.io.gfile.exists(f"{root}/model/params.json")
    assert tf.train.latest_checkpoint(f"{root}/model").endswith("-2")
    assert tf.train.latest_checkpoint(f"{root}/model/best") is not None  # copied there: no hard links in ram://
    assert [n for n in tf.io.gfile.listdir(f"{root}/model") if n.startswith("events.out.tfevents")]

    capsys.readouterr()
    assert main(["test", f"{root}/data.tfrecords", "--model-dir", f"{root}/model", "--visualize",
                 "--output-dir", f"{root}/results", *no_log]) == 0
    assert "word accuracy:" in capsys.readouterr().err
    assert tf.io.gfile.exists(f"{root}/results/index.html")

    assert main(["predict", f"{root}/images/0.png", f"{root}/images/", "--model-dir", f"{root}/model",
                 *no_log]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 25 and rows[0].startswith(f"{root}/images/0.png\t")

    assert main(["export", f"{root}/exported", "--model-dir", f"{root}/model", *no_log]) == 0
    assert tf.io.gfile.exists(f"{root}/exported/1/saved_model.pb")
    with tf.io.gfile.GFile(f"{root}/broken/model.ckpt-9.index", "wb") as f:
        f.write(b"not a checkpoint")
    assert main(["export", f"{root}/exported", "--version", "1", "--force", "--checkpoint",
                 f"{root}/broken/model.ckpt-9", "--model-dir", f"{root}/model", *no_log]) != 0
    assert [name.rstrip("/") for name in tf.io.gfile.listdir(f"{root}/exported")] == ["1"]  # nothing half-built
    assert tf.io.gfile.exists(f"{root}/exported/1/saved_model.pb")  # a failed --force keeps the old version
    assert main(["export", f"{root}/exported", "--version", "1", "--force", "--beam-width", "2",
                 "--model-dir", f"{root}/model", *no_log]) == 0
    replaced = load(f"{root}/exported/1")
    assert replaced.beam_width == 2  # the new version's files copied over the old ones
    replaced.close()
    assert main(["export", f"{root}/exported", "--format", "frozengraph", "--model-dir", f"{root}/model",
                 *no_log]) == 0
    assert tf.io.gfile.exists(f"{root}/exported/frozen_graph.pb")
