"""--lexicon FILE: the words decoding may answer, as a trie over the charset's class ids.

The trie is kept as two arrays that the inference graph binary-searches (aocr.model.beam): each
edge's key, node * num_classes + class id, sorted, and the node it leads to. A node that ends a
word has an EOS edge. As constants they travel inside SavedModels and frozen graphs, with no
lookup table to initialize; a million random words of 3-8 characters make 3.2 million edges (39 MB).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from aocr.core.charset import EOS_ID, Charset
from aocr.core.errors import AocrError
from aocr.core.files import read_bytes
from aocr.core.params import Decoding, ModelParams

log = logging.getLogger("aocr")

SHOWN_SKIPPED = 5  # words named in the warning about skipped ones

# An answer is flagged as outside the lexicon when its probability is below this share of the
# probability of the model's reading without the lexicon: the image most likely shows a word the
# lexicon lacks (or something that is no word), and the lexicon forced the nearest one onto it.
OUTSIDE_LEXICON_RATIO = 0.01


@dataclass(frozen=True, eq=False)
class Lexicon:
    keys: np.ndarray = field(repr=False)  # int64 [E], node * num_classes + class id, sorted; node 0 is the root
    children: np.ndarray = field(repr=False)  # int32 [E], the node each edge leads to (an EOS edge: its own node)
    words: int  # distinct words in the trie


def build_lexicon(words: list[str], charset: Charset) -> Lexicon:
    """The trie of `words` (normalized, every character in the charset), as sorted edge arrays."""
    edges: dict[tuple[int, int], int] = {}
    for word in words:
        node = 0
        for class_id in charset.encode(word):
            node = edges.setdefault((node, class_id), len(edges) + 1)
        edges[(node, EOS_ID)] = node
    classes = charset.num_classes
    keys = np.array([node * classes + class_id for node, class_id in edges], np.int64)
    children = np.array(list(edges.values()), np.int32)
    order = np.argsort(keys)
    return Lexicon(keys[order], children[order], len(set(words)))


def load_lexicon(path: str, charset: Charset, max_length: int) -> Lexicon:
    """One word per line (blank lines ignored). Words the model cannot answer (a character outside the
    charset, or longer than max_length) are skipped with a warning naming the first few; a file with
    no usable word is an AocrError."""
    try:
        text = read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as e:
        raise AocrError(f"--lexicon {path}: not UTF-8 text ({e.reason} at byte {e.start}); "
                        "give one word per line") from None
    words, skipped = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        word = charset.normalize(line.strip())
        if not word:
            continue
        if charset.unknown_chars(word) or len(word) > max_length:
            skipped.append(f"line {number} {word!r}")
        else:
            words.append(word)
    if skipped:
        log.warning("--lexicon %s: %d words skipped, with characters outside the charset or longer than "
                    "--max-prediction %d: %s%s", path, len(skipped), max_length,
                    ", ".join(skipped[:SHOWN_SKIPPED]), ", ..." if len(skipped) > SHOWN_SKIPPED else "")
    if not words:
        raise AocrError(f"--lexicon {path}: no word the model can answer ({len(skipped)} skipped); "
                        "give one word per line, in the model's charset")
    lexicon = build_lexicon(words, charset)
    log.info("--lexicon %s: %d words, %d trie edges", path, lexicon.words, len(lexicon.keys))
    return lexicon


def outside_lexicon(answer_probability: float, unconstrained_probability: float) -> bool:
    """Whether a lexicon answer is far less likely than the unconstrained reading (OUTSIDE_LEXICON_RATIO)."""
    return answer_probability < OUTSIDE_LEXICON_RATIO * unconstrained_probability


def decoding_lexicon(decoding: Decoding, params: ModelParams) -> Lexicon | None:
    """The lexicon of decoding.lexicon for this model's charset and --max-prediction, or None."""
    if decoding.lexicon is None:
        return None
    return load_lexicon(decoding.lexicon, params.char_table, params.max_prediction)
