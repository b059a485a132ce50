"""Recognition from an export (the SavedModel `aocr export` writes) in your own program: the texts it
serves, read in-process, with no checkpoint and no params.json. open_recognizer takes either kind of model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from aocr.core import savedmodel
from aocr.core.errors import AocrError
from aocr.core.files import join
from aocr.core.session import session_config
from aocr.inference.recognizer import BatchReader, Recognizer, Result, candidate


def version_directory(path: str, version: int | None = None) -> str:
    """The SavedModel directory of an export: `path` itself when it holds saved_model.pb, else its version
    `version` (default: the highest), as TF Serving picks it."""
    if tf.io.gfile.exists(join(path, "saved_model.pb")) and version is None:
        return path
    available = savedmodel.versions(path)
    if not available:
        raise AocrError(f"{path}: no SavedModel and no version directory (1, 2, ...); make one with "
                        f"`aocr export {path}`")
    chosen = available[-1] if version is None else version
    if chosen not in available:
        raise AocrError(f"{path}: no version {chosen}; there are {available}")
    return savedmodel.version_path(path, chosen)


class ExportedRecognizer(BatchReader):
    """An export's `n_best` signature (all of an --n-best export's candidates, each with its characters'
    probabilities), or `serving_default` where it has none, fed with encoded images.

    Its Results have no attention and no width: an export does not keep them.
    """

    def __init__(self, model: savedmodel.Loaded) -> None:
        self.model = model
        self.n_best = bool(model.signature_outputs(savedmodel.N_BEST_SIGNATURE))

    @classmethod
    def load(cls, path: str, version: int | None = None) -> ExportedRecognizer:
        """An export directory (its highest version, or `version`) or one version's directory."""
        return cls(savedmodel.load(version_directory(path, version), session_config()))

    def run_batch(self, images: Sequence[bytes]) -> list[Result]:
        """One session run over images; raises tf.errors.InvalidArgumentError if one does not decode."""
        key = savedmodel.N_BEST_SIGNATURE if self.n_best else savedmodel.SIGNATURE
        fetched = self.model.session.run(self.model.signature_outputs(key), {self.model.input_name: list(images)})
        if self.n_best:  # texts and probabilities [N, K], char_probabilities [N, K, steps]
            answers = zip(fetched[savedmodel.TEXTS_KEY], fetched[savedmodel.PROBABILITIES_KEY],
                          fetched[savedmodel.CHAR_PROBABILITIES_KEY], strict=True)
        else:  # output and probability [N]
            answers = ((texts[None], probabilities[None], np.zeros([1, 0])) for texts, probabilities in
                       zip(fetched[savedmodel.TEXT_KEY], fetched[savedmodel.PROBABILITY_KEY], strict=True))
        results = []
        for texts, probabilities, char_probabilities in answers:
            candidates = [candidate(*ranked) for ranked in zip(texts, probabilities, char_probabilities, strict=True)]
            best = candidates[0]
            results.append(Result(best.text, best.probability, None, None, best.char_probabilities, candidates))
        return results

    def close(self) -> None:
        """Release the session."""
        self.model.close()


def open_recognizer(path: str) -> BatchReader:
    """A model dir (it has params.json: its best checkpoint, read as `aocr predict` reads it) or an export (a
    directory of versions, or one version's directory): whichever `path` holds."""
    if tf.io.gfile.exists(join(path, "params.json")):
        return Recognizer.from_model_dir(path, {})
    return ExportedRecognizer.load(path)
