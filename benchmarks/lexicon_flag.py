"""How well --lexicon's outside-the-lexicon flag finds the images whose word the lexicon lacks.

The model (--model-dir, default the 10-minute model of benchmarks/learning.py) reads the 500 rendered
test images with a 10,000-word lexicon: every test label but one in ten (the held-out words), plus
random strings of 3-8 characters. Prints, for the images whose label is in the lexicon and for those
whose label is not, how many were flagged and the word accuracy of greedy decoding and of the lexicon;
writes benchmarks/out/lexicon_flag.json.

    python benchmarks/lexicon_flag.py [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LEARNED_MODEL, machine, print_table, rendered_test_images, write_json  # noqa: E402

from aocr.core import params as model_params  # noqa: E402
from aocr.core.params import Decoding  # noqa: E402
from aocr.inference.recognizer import Recognizer  # noqa: E402

LEXICON_WORDS = 10_000


def make_lexicon(labels: list[str], charset: str, path: Path) -> set[str]:
    """Write the lexicon; returns the held-out labels (in the test set, not in the lexicon)."""
    distinct = sorted(set(labels))
    held_out = set(distinct[::10])
    words = set(distinct) - held_out
    rng = random.Random(0)
    while len(words) < LEXICON_WORDS:
        word = "".join(rng.choice(charset) for _ in range(rng.randint(3, 8)))
        if word not in held_out:
            words.add(word)
    path.write_text("\n".join(sorted(words)) + "\n", encoding="utf-8")
    return held_out


def read_all(model_dir: str, decoding: Decoding, images: list[bytes]) -> list:
    recognizer = Recognizer.load(model_dir, model_params.require(model_dir), decoding=decoding)
    try:
        return recognizer.recognize(images, 65)
    finally:
        recognizer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=str(LEARNED_MODEL))
    args = parser.parse_args()
    labels, images = rendered_test_images()
    with tempfile.TemporaryDirectory() as temp:
        lexicon_path = Path(temp) / "lexicon.txt"
        held_out = make_lexicon(labels, model_params.require(args.model_dir).charset, lexicon_path)
        forced = read_all(args.model_dir, Decoding(lexicon=str(lexicon_path)), images)
    greedy = [result.unconstrained for result in forced]
    results = {}
    for group, wanted in (("label in the lexicon", False), ("label not in the lexicon", True)):
        members = [i for i, label in enumerate(labels) if (label in held_out) == wanted]
        results[group] = {
            "images": len(members),
            "flagged": sum(forced[i].outside_lexicon for i in members),
            "greedy_word_accuracy": sum(greedy[i].text == labels[i] for i in members) / len(members),
            "lexicon_word_accuracy": sum(forced[i].text == labels[i] for i in members) / len(members),
        }
    table = [("images", "flagged outside the lexicon", "words right: greedy / lexicon")]
    table += [(f"{group} ({figures['images']})", str(figures["flagged"]),
               f"{100 * figures['greedy_word_accuracy']:.1f}% / {100 * figures['lexicon_word_accuracy']:.1f}%")
              for group, figures in results.items()]
    print_table(table)
    print(f"written to {write_json('lexicon_flag.json', {'machine': machine(), 'results': results})}")


if __name__ == "__main__":
    main()
