"""`aocr dataset` on the ground truth OCR people keep: folders of line images with NAME.gt.txt beside each
(PNG, ocropy's .bin.png, bilevel TIFF), globs of them, and PAGE-XML and ALTO pages whose lines are cropped."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from aocr.cli import build_parser
from aocr.cli import dataset as dataset_command
from aocr.core.errors import AocrError
from aocr.data.records import iter_records
from tests.aocr_log import capture_aocr_log

aocr_log = pytest.fixture(name="aocr_log")(capture_aocr_log)

LINES = ["Ein Wort", "zwei Zeilen", "drei"]


def line_image(text: str, width: int = 160, height: int = 28) -> Image.Image:
    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).text((4, 6), text, fill=0)
    return image


def run_dataset(*paths, flags=()):
    """`aocr dataset` through its own run(), in this process."""
    args = build_parser().parse_args(["dataset", *map(str, paths), "--log-path", "", *flags])
    return dataset_command.run(args)


def records(path):
    return list(iter_records([str(path)]))


@pytest.fixture
def line_folder(tmp_path):
    """A folder of lines as ocropy, Calamari and kraken keep them, in a subfolder, in three image formats."""
    folder = tmp_path / "gt" / "book"
    folder.mkdir(parents=True)
    line_image(LINES[0]).save(folder / "0001.png")
    line_image(LINES[1]).convert("1").save(folder / "0002.bin.png")
    line_image(LINES[2]).convert("1").save(folder / "0003.tif", compression="group4")
    for number, text in enumerate(LINES, start=1):
        (folder / f"000{number}.gt.txt").write_text(text + "\n", encoding="utf-8")
    line_image("no transcription").save(folder / "0004.png")  # an image without .gt.txt is not a line of the set
    return tmp_path / "gt"


def test_a_folder_of_line_images_and_gt_txt_becomes_records_tiff_as_png(line_folder, tmp_path):
    output = tmp_path / "lines.tfrecords"
    assert run_dataset(line_folder, output, flags=["--no-force-uppercase", "--save-filename"]) == 0
    written = records(output)
    assert [r.label for r in written] == LINES
    assert written[2].comment.endswith("0003.tif")
    converted = Image.open(io.BytesIO(written[2].image))
    assert converted.format == "PNG" and converted.size == (160, 28)
    original = np.asarray(Image.open(line_folder / "book" / "0003.tif").convert("L"))
    assert np.array_equal(np.asarray(converted.convert("L")), original)  # lossless


def test_a_glob_reads_the_same_lines(line_folder, tmp_path):
    output = tmp_path / "lines.tfrecords"
    assert run_dataset(f"{line_folder}/**/*.png", output, flags=["--no-force-uppercase"]) == 0
    assert [r.label for r in records(output)] == LINES[:2]


def test_a_folder_of_lines_trains_with_no_flags(line_folder, tmp_path, aocr_main):
    output = tmp_path / "lines.tfrecords"
    assert run_dataset(line_folder, output) == 0
    trained = aocr_main("train", str(output), "--model-dir", str(tmp_path / "m"), "--max-steps", "2",
                        "--batch-size", "2", "--validation-split", "0")
    assert trained.returncode == 0, trained.stderr
    assert "stopped at step 2" in trained.stderr


def test_a_plain_txt_is_the_transcription_of_a_line_image_without_a_gt_txt(tmp_path):
    folder = tmp_path / "lines"
    folder.mkdir()
    line_image(LINES[0]).save(folder / "a.png")
    (folder / "a.txt").write_text(LINES[0] + "\n", encoding="utf-8")
    line_image(LINES[1]).save(folder / "b.png")
    (folder / "b.txt").write_text("not the transcription", encoding="utf-8")
    (folder / "b.gt.txt").write_text(LINES[1], encoding="utf-8")  # a .gt.txt wins over a .txt
    output = tmp_path / "lines.tfrecords"
    assert run_dataset(folder, output) == 0
    assert [r.label for r in records(output)] == LINES[:2]


def test_bad_transcriptions_are_named_and_skipped(line_folder, tmp_path, aocr_log):
    (line_folder / "book" / "0002.gt.txt").write_text("two\nlines\n", encoding="utf-8")
    (line_folder / "book" / "0003.gt.txt").write_bytes(b"\xff\xfe not utf-8")
    output = tmp_path / "lines.tfrecords"
    assert run_dataset(line_folder, output) == 0
    assert [r.label for r in records(output)] == [LINES[0]]
    assert "0002.gt.txt: more than one line of text" in aocr_log.text
    assert "0003.gt.txt" in aocr_log.text and "not UTF-8" in aocr_log.text
    assert "1 written, 2 skipped" in aocr_log.text


def page_image(path):
    """A page of two lines of text, with a dark mark between them that a line's polygon leaves out."""
    page = Image.new("L", (400, 120), 255)
    draw = ImageDraw.Draw(page)
    draw.text((20, 20), LINES[0], fill=0)
    draw.text((20, 70), LINES[1], fill=0)
    draw.rectangle((300, 44, 310, 52), fill=0)  # inside line 1's box, outside its polygon
    page.save(path)


PAGE_XML = """<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15">
  <Page imageFilename="page.tif" imageWidth="400" imageHeight="120">
    <TextRegion id="r1">
      <Coords points="10,10 390,10 390,110 10,110"/>
      <TextLine id="l1">
        <Coords points="10,12 390,12 390,40 200,40 200,56 10,56"/>
        <TextEquiv index="1"><Unicode>wrong reading</Unicode></TextEquiv>
        <TextEquiv index="0"><Unicode>{}</Unicode></TextEquiv>
      </TextLine>
      <TextLine id="l2">
        <Coords points="10,62 390,62 390,100 10,100"/>
        <TextEquiv><Unicode>{}</Unicode></TextEquiv>
      </TextLine>
      <TextLine id="l3">
        <Coords points="10,100 390,100 390,110 10,110"/>
      </TextLine>
    </TextRegion>
  </Page>
</PcGts>
""".format(*LINES)

ALTO_XML = """<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="http://www.loc.gov/standards/alto/ns-v4#">
  <Description>
    <MeasurementUnit>pixel</MeasurementUnit>
    <sourceImageInformation><fileName>page.tif</fileName></sourceImageInformation>
  </Description>
  <Layout><Page WIDTH="400" HEIGHT="120" PHYSICAL_IMG_NR="1" ID="p1"><PrintSpace>
    <TextBlock ID="b1">
      <TextLine ID="t1" HPOS="10" VPOS="12" WIDTH="380" HEIGHT="44">
        <Shape><Polygon POINTS="10 12 390 12 390 40 200 40 200 56 10 56"/></Shape>
        <String CONTENT="Ein"/><SP/><String CONTENT="Wort"/>
      </TextLine>
      <TextLine ID="t2" HPOS="10" VPOS="62" WIDTH="380" HEIGHT="38">
        <String CONTENT="zwei"/><SP/><String CONTENT="Zei"/><HYP CONTENT="-"/>
      </TextLine>
    </TextBlock>
  </PrintSpace></Page></Layout>
</alto>
"""


@pytest.mark.parametrize(("name", "document", "labels", "ids"), [
    ("page.xml", PAGE_XML, LINES[:2], ["l1", "l2"]),
    ("alto.xml", ALTO_XML, [LINES[0], "zwei Zei-"], ["t1", "t2"]),
])
def test_page_xml_and_alto_lines_are_cropped_by_their_polygons(tmp_path, aocr_log, name, document, labels, ids):
    page_image(tmp_path / "page.tif")
    (tmp_path / name).write_text(document, encoding="utf-8")
    output = tmp_path / "page.tfrecords"
    assert run_dataset(tmp_path / name, output, flags=["--no-force-uppercase", "--save-filename"]) == 0
    written = records(output)
    assert [r.label for r in written] == labels
    assert [r.comment for r in written] == [f"{tmp_path / name}#{line_id}" for line_id in ids]
    crops = [Image.open(io.BytesIO(r.image)) for r in written]
    for number, crop in enumerate(crops):  # for a person to look at
        crop.save(tmp_path / f"{name}-line{number}.png")
    assert crops[0].size == (381, 45) and crops[1].size == (381, 39)
    first = np.asarray(crops[0].convert("L"))
    assert first[44 - 12:52 - 12 + 1, 300 - 10:310 - 10 + 1].min() == 255  # the mark outside the polygon: background
    assert first.min() < 64  # the line's own text is kept
    if name == "page.xml":
        assert "line l3: no text; skipped" in aocr_log.text


def test_a_malformed_page_file_is_an_error_naming_it(tmp_path, aocr_log):
    (tmp_path / "page.xml").write_text("<PcGts><Page", encoding="utf-8")
    with pytest.raises(AocrError, match="page.xml: not well-formed XML"):
        run_dataset(tmp_path / "page.xml", tmp_path / "out.tfrecords")


def test_a_missing_page_image_skips_its_lines_naming_it(tmp_path, aocr_log):
    (tmp_path / "page.xml").write_text(PAGE_XML, encoding="utf-8")
    with pytest.raises(AocrError, match="no usable line"):
        run_dataset(tmp_path / "page.xml", tmp_path / "out.tfrecords")
    assert "page.tif" in aocr_log.text and "skipped" in aocr_log.text


def test_an_input_given_last_by_mistake_is_not_overwritten(line_folder, tmp_path):
    annotations = tmp_path / "more.txt"
    annotations.write_text("some/image.png LABEL\n", encoding="utf-8")
    with pytest.raises(AocrError, match="more.txt exists and is not a TFRecords file"):
        run_dataset(line_folder, annotations)
    assert annotations.read_text(encoding="utf-8") == "some/image.png LABEL\n"
    output = tmp_path / "lines.tfrecords"
    assert run_dataset(line_folder, output) == 0 and run_dataset(line_folder, output) == 0  # a TFRecords file: replaced
