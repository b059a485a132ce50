"""`--visualize`: attention maps per step over the original image, GIFs, word.txt and an offline HTML report."""

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from PIL import Image

from aocr.inference.recognizer import Result
from aocr.inference.visualize import CAPTION_HEIGHT, DISPLAY_HEIGHT, AttentionWriter, attention_over_width, display_size
from tests.conftest import write_annotations


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.rows = [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.sources += [attrs[k] for k in ("src", "href") if k in attrs]
        self.rows += tag == "tr"


def test_test_visualize_writes_folders_gifs_and_report(trained_model, digits_set, tmp_path, aocr_main):
    rows = list(zip(digits_set.images[:10], digits_set.labels[:10], strict=True))
    rows.append((digits_set.images[10], "9999"))  # a wrong label, so one image lands in incorrect/
    write_annotations(tmp_path / "a.txt", rows)
    records, out = str(tmp_path / "few.tfrecords"), tmp_path / "out"
    assert aocr_main("dataset", str(tmp_path / "a.txt"), records, "--save-filename").returncode == 0
    result = aocr_main("test", records, "--model-dir", str(trained_model), "--visualize", "--output-dir", str(out))
    assert result.returncode == 0, result.stderr
    folders = [*(out / "correct").glob("*"), *(out / "incorrect").glob("*")]
    assert len(folders) == 11
    assert (out / "incorrect" / digits_set.images[10].stem).is_dir()
    for folder in folders:
        word = (folder / "word.txt").read_text().splitlines()
        prediction = word[0].removeprefix("prediction: ")
        assert word[1].startswith("label: ")
        steps = sorted(folder.glob("step-*.png"))
        assert len(steps) == len(prediction) + 1  # one per character, then EOS
        with Image.open(folder / "attention.gif") as gif:
            assert gif.n_frames == len(steps)
        original = Image.open(next(p for p, _ in rows if p.stem == folder.name.split("-")[0]))
        frame = Image.open(steps[0])
        assert (frame.width, frame.height - CAPTION_HEIGHT) == display_size(*original.size)
        assert frame.height - CAPTION_HEIGHT >= original.height

    report = (out / "index.html").read_text()
    links = Links()
    links.feed(report)
    assert links.rows == 12  # header and 11 images
    assert all((out / src).exists() for src in links.sources)
    assert "http://" not in report and "https://" not in report
    assert "word accuracy:" in report
    assert report.index("incorrect") < report.index("class='correct'")  # incorrect ones first


def test_predict_visualize_names_folders_after_files(trained_model, digits_set, tmp_path, aocr_main):
    paths = [str(p) for p in digits_set.images[:3]]
    result = aocr_main("predict", *paths, "--model-dir", str(trained_model), "--visualize", "--output-dir",
                       str(tmp_path / "viz"))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "viz").iterdir() if p.is_dir()) == sorted(
        p.stem for p in digits_set.images[:3])
    assert (tmp_path / "viz" / "index.html").exists()


def test_frames_are_scaled_up_with_the_heat_map_over_the_right_columns(tmp_path):
    """A 100x25 crop is drawn at DISPLAY_HEIGHT, and a step that looked at encoder column 1 of 8
    (the CNN's input pixels 4-7 of 32) tints the same share of the scaled width; the report comes from
    the packaged template with every placeholder filled."""
    crop = Image.new("RGB", (100, 25), "white")
    path = tmp_path / "crop.png"
    crop.save(path)
    attention = np.zeros((2, 8), np.float32)
    attention[0, 1] = attention[1, 6] = 1.0
    writer = AttentionWriter(str(tmp_path / "out"))
    folder = writer.add("crop.png", path.read_bytes(), Result("A", 0.5, attention, 32), label="A")
    step = np.asarray(Image.open(tmp_path / "out" / folder / "step-01.png").convert("RGB")).astype(int)
    width, height = display_size(100, 25)
    assert step.shape == (height + CAPTION_HEIGHT, width, 3) and height == DISPLAY_HEIGHT
    red = np.flatnonzero((step[height // 2, :, 0] - step[height // 2, :, 1]) > 100)
    assert abs(red.min() - width / 8) <= 1 and abs(red.max() + 1 - 2 * width / 8) <= 1
    with Image.open(tmp_path / "out" / folder / "attention.gif") as gif:
        assert gif.n_frames == 2 and gif.size == (width, height + CAPTION_HEIGHT)
    report = Path(writer.write_report(title="a <title>")).read_text()
    assert "$" not in report and "<title>a &lt;title&gt;</title>" in report and "1 images" in report


def test_heat_map_spans_the_original_width():
    weights = np.array([0.0, 1.0, 0.0, 0.0])  # 4 columns = 16 resized pixels
    spread = attention_over_width(weights, resized_width=16, original_width=64)
    assert spread.shape == (64,)
    assert spread[16:32].min() == 1.0 and spread[:16].max() == 0.0 and spread[32:].max() == 0.0


def test_validation_scalars_and_attention_images_reach_tensorboard(digits_set, tmp_path, aocr_main):
    import tensorflow as tf

    from tests.conftest import TINY_SHAPE

    result = aocr_main("train", str(digits_set.tfrecords), "--model-dir", str(tmp_path / "m"), *TINY_SHAPE,
                       "--batch-size", "4", "--max-steps", "2", "--steps-per-checkpoint", "1",
                       "--validation", str(digits_set.tfrecords))
    assert result.returncode == 0, result.stderr
    assert "validation word accuracy:" in result.stderr
    scalars, images = {}, set()
    for events in (tmp_path / "m").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                if value.HasField("image"):
                    images.add(value.tag)
                else:
                    scalars.setdefault(value.tag, []).append(event.step)
    assert scalars["validation/word_accuracy"] == [1, 2]
    assert scalars["validation/character_accuracy"] == [1, 2]
    assert {"loss", "perplexity", "learning_rate", "gradient_norm", "images_per_second"} <= set(scalars)
    assert images == {"attention/sample-1", "attention/sample-2", "attention/sample-3"}
