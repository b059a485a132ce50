"""A multi-script run from scratch as a user makes it: lines of pseudo-words in mixed-case Latin, Cyrillic
and Greek with digits, punctuation and spaces (8-28 characters, DejaVu fonts), then `aocr dataset`,
`aocr train` with no shape or charset flag for a fixed time, `aocr test` with only --model-dir, and
`aocr export` + `aocr serve` answering Cyrillic test images over the REST API. Prints a table and
writes benchmarks/out/multiscript.json.

    python benchmarks/multiscript.py [--minutes 10] [--train-count 6000] [--test-count 300]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT, aocr, free_port, machine, post, predict_body, print_table, start_server, write_json  # noqa: E402

from aocr.data.synthetic import load_font, render  # noqa: E402

SCRIPTS = {
    "latin": "abcdefghijklmnopqrstuvwxyz",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "greek": "αβγδεζηθικλμνξοπρστυφχψω",
}
PUNCTUATION = ".,:;!?-'()"
FONTS = [f"/usr/share/fonts/truetype/dejavu/{name}.ttf"
         for name in ("DejaVuSans", "DejaVuSerif", "DejaVuSansMono", "DejaVuSansCondensed")]
SUMMARY = re.compile(r"word accuracy: ([\d.]+)%, character accuracy: ([\d.]+)%")


def pseudo_word(rng: random.Random) -> str:
    """2-9 letters of one script, capitalized now and then, sometimes a number instead."""
    if rng.random() < 0.12:
        return str(rng.randint(0, 9999))
    letters = SCRIPTS[rng.choice(list(SCRIPTS))]
    word = "".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))
    word = word.capitalize() if rng.random() < 0.3 else word.upper() if rng.random() < 0.05 else word
    return word + (rng.choice(PUNCTUATION) if rng.random() < 0.2 else "")


def pseudo_line(rng: random.Random) -> str:
    """Words joined by spaces up to 8-28 characters; a line longer than 28 is cut, as text is at an edge."""
    target = rng.randint(8, 28)
    words = [pseudo_word(rng)]
    while len(" ".join(words)) < target:
        words.append(pseudo_word(rng))
    return " ".join(words)[:28].rstrip()


def make_set(name: str, count: int, seed: int) -> tuple[Path, list[tuple[Path, str]]]:
    """(tfrecords, [(image, label)]) of `count` rendered lines; made once under benchmarks/out."""
    directory = OUT / name
    tfrecords = directory / "data.tfrecords"
    rng = random.Random(seed)
    fonts = [load_font(path, size) for path in FONTS for size in (22, 26, 30)]
    rows = []
    for number in range(count):
        text = pseudo_line(rng)
        rows.append((directory / "images" / f"{number:05d}.png", text, rng.choice(fonts)))
    if not tfrecords.exists():
        (directory / "images").mkdir(parents=True, exist_ok=True)
        draw = random.Random(seed + 1)
        for path, text, font in rows:
            render(text, draw, font).save(path)
        annotations = directory / "annotations.txt"
        annotations.write_text("".join(f"{path} {text}\n" for path, text, *_ in rows), encoding="utf-8")
        subprocess.run(aocr("dataset", str(annotations), str(tfrecords), "--log-path", ""), check=True)
    return tfrecords, [(path, text) for path, text, *_ in rows]


def served_answers(model_dir: Path, images: list[Path]) -> list[str]:
    """The texts `aocr serve` answers over REST for `images`, from a fresh export of the model."""
    export_dir = model_dir.parent / "export"
    subprocess.run(aocr("export", str(export_dir), "--model-dir", str(model_dir), "--force", "--version", "1",
                        "--log-path", ""), check=True, capture_output=True)
    server, url = start_server(export_dir, free_port(), [])
    try:
        status, answer, _ = post(url, predict_body(*(path.read_bytes() for path in images)))
    finally:
        server.terminate()
        server.wait(timeout=60)
    if status != 200:
        raise SystemExit(f"aocr serve answered {status}: {answer[:500]!r}")
    return [prediction["output"] if isinstance(prediction, dict) else prediction
            for prediction in json.loads(answer)["predictions"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--train-count", type=int, default=6000)
    parser.add_argument("--test-count", type=int, default=300)
    args = parser.parse_args()
    train_records, _ = make_set(f"multiscript-train-{args.train_count}", args.train_count, seed=31)
    test_records, test_rows = make_set(f"multiscript-test-{args.test_count}", args.test_count, seed=32)
    model_dir = OUT / "multiscript" / "model"
    start = time.monotonic()
    trained = subprocess.run(aocr("train", str(train_records), "--model-dir", str(model_dir), "--no-resume",
                                  "--max-minutes", f"{args.minutes:g}", "--log-path", ""),
                             capture_output=True, text=True)
    train_seconds = time.monotonic() - start
    if trained.returncode != 0:
        raise SystemExit(trained.stderr[-3000:])
    tested = subprocess.run(aocr("test", str(test_records), "--model-dir", str(model_dir), "--log-path", ""),
                            capture_output=True, text=True, check=True)
    words, chars = map(float, SUMMARY.search(tested.stderr).groups())
    cyrillic = [(path, text) for path, text in test_rows if set(text.lower()) & set(SCRIPTS["cyrillic"])][:5]
    served = served_answers(model_dir, [path for path, _ in cyrillic])
    shapes = [line for line in trained.stderr.splitlines() if "from the data (auto)" in line]
    steps = re.findall(r"stopped at step (\d+)", trained.stderr)
    results = {"machine": machine(), "minutes": args.minutes, "train_seconds": train_seconds,
               "steps": int(steps[-1]) if steps else None, "auto": shapes, "word_accuracy": words,
               "character_accuracy": chars,
               "served_cyrillic": [{"label": text, "served": answer} for (_, text), answer in
                                   zip(cyrillic, served, strict=True)]}
    rows = [("figure", "value", "")]
    rows += [("shapes from the data", line.split("INFO ", 1)[-1][:100], "") for line in shapes]
    rows += [("training", f"{train_seconds:.0f} s, step {results['steps']}", ""),
             ("aocr test", f"{words:.2f}% words, {chars:.2f}% characters", f"{args.test_count} images")]
    rows += [("served (REST)", answer, f"label {text}") for (_, text), answer in zip(cyrillic, served, strict=True)]
    print_table(rows)
    print(f"wrote {write_json('multiscript.json', results)}")


if __name__ == "__main__":
    main()
