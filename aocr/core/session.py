"""Sessions, device placement and checkpoints, shared by every verb that runs the model."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterable, Iterator

import tensorflow as tf

from aocr.core import defaults
from aocr.core.errors import AocrError, first_line_of
from aocr.core.files import join, read_bytes
from aocr.core.params import Decoding, ModelParams

tf1 = tf.compat.v1
log = logging.getLogger("aocr")


def session_config() -> tf1.ConfigProto:
    """Soft placement: ops without a GPU kernel, and every op on a machine without that GPU, run on the CPU."""
    config = tf1.ConfigProto(allow_soft_placement=True)
    config.gpu_options.allow_growth = True
    return config


@contextlib.contextmanager
def model_device(gpu_id: int | None) -> Iterator[None]:
    """Place the model on GPU `gpu_id` when one is asked for; otherwise let TensorFlow choose."""
    if gpu_id is None:
        yield
    else:
        with tf.device(f"/device:GPU:{gpu_id}"):
            yield


# Where training keeps the best validated checkpoint, apart from the rolling last few.
BEST_DIR = "best"
BEST_SCORE_FILE = "best.json"  # in BEST_DIR: the best checkpoint's step, validation scores and reading


def best_dir(model_dir: str) -> str:
    return join(model_dir, BEST_DIR)


def latest_checkpoint(model_dir: str) -> str | None:
    return tf.train.latest_checkpoint(model_dir)


def checkpoint_step(checkpoint: str | None) -> int:
    """The global step a checkpoint was saved at; 0 for none."""
    return int(tf.train.load_variable(checkpoint, "global_step")) if checkpoint else 0


def choose_checkpoint(model_dir: str, which: str = "best") -> str:
    """The checkpoint `--checkpoint which` names: "best" (the best validated one training kept, else the
    latest), "latest", or a checkpoint path (a prefix such as DIR/model.ckpt-1000, or a directory)."""
    if which in ("best", "latest"):
        best = best_checkpoint(model_dir) if which == "best" else None
        if best:
            log.info("using the best validated checkpoint, %s (--checkpoint latest for the newest)", best)
            return best
        path = require_checkpoint(model_dir)
        log.info("using the latest checkpoint, %s%s", path,
                 " (training kept no validated best)" if which == "best" else "")
        return path
    path = which
    if not tf.io.gfile.exists(which + ".index") and tf.io.gfile.isdir(which):
        path = tf.train.latest_checkpoint(which)
    if not path or not tf.io.gfile.exists(path + ".index"):
        raise AocrError(f"--checkpoint {which}: no checkpoint there; pass best, latest, or a path such as "
                        f"{join(model_dir, 'model.ckpt-1000')}")
    log.info("using the checkpoint %s", path)
    return path


def _best_record(model_dir: str) -> dict:
    """best.json's fields ({} when there is none or it does not parse)."""
    path = join(best_dir(model_dir), BEST_SCORE_FILE)
    if not model_dir or not tf.io.gfile.exists(path):
        return {}
    try:
        record = json.loads(read_bytes(path).decode("utf-8"))
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def best_checkpoint(model_dir: str) -> str | None:
    """The best checkpoint training kept: the one best.json names when its files are there (best.json is
    written after them and before the `checkpoint` file points at them, so it is what commits a new best),
    else the one BEST_DIR's `checkpoint` file names; None when training kept none."""
    step = _best_record(model_dir).get("step")
    named = join(best_dir(model_dir), f"model.ckpt-{step}")
    if isinstance(step, int) and tf.io.gfile.exists(named + ".index"):
        return named
    return tf.train.latest_checkpoint(best_dir(model_dir))


def validated_decoder(model_dir: str) -> str | None:
    """The reading (aocr.core.defaults.DECODERS) that scored best when training last kept a best checkpoint;
    None when it kept none, or before the readings were compared."""
    decoder = _best_record(model_dir).get("decoder")
    return decoder if decoder in defaults.DECODERS else None


def settle_decoding(decoding: Decoding, params: ModelParams, model_dir: str) -> Decoding:
    """`decoding` with its decoder chosen: the one asked for, else the validated one (validated_decoder), else
    the model's own head; one the model lacks, or a lexicon without the attention decoder, is an error."""
    validated = validated_decoder(model_dir)
    decoder = decoding.decoder or validated or params.decoder
    if decoder not in params.decoders:
        raise AocrError(f"--decoder {decoder}: this model has only its CTC head (it was trained with --decoder "
                        "ctc); pass --decoder ctc or leave the flag out")
    if decoder == "ctc" and decoding.lexicon is not None:
        raise AocrError("--lexicon constrains the attention decoder's beam search: pass --decoder attention or "
                        "joint" + ("" if "attention" in params.decoders else "; this model has only its CTC head"))
    if decoding.decoder is None:
        log.info("reading with the %s decoder (%s)", decoder, "it scored best in validation"
                 if decoder == validated else "the model's own; --decoder chooses another")
    return dataclasses.replace(decoding, decoder=decoder)


def require_checkpoint(model_dir: str) -> str:
    path = latest_checkpoint(model_dir)
    if path is None:
        raise AocrError(f"{model_dir}: no checkpoint; train a model there with `aocr train` or pass --model-dir")
    return path


def restore(session: tf1.Session, saver: tf1.train.Saver, checkpoint: str) -> None:
    """Load a checkpoint; one that does not fit the graph is an error saying so, not a traceback."""
    try:
        with session.graph.as_default():
            saver.restore(session, checkpoint)
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as e:
        first_line = first_line_of(e.message or str(e))
        raise AocrError(f"{checkpoint} does not match this model ({first_line}); "
                        "was it trained with other shape flags?") from None
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as e:
        raise AocrError(f"{checkpoint} is damaged ({first_line_of(e.message or str(e))}); pass --checkpoint with "
                        "another one (best, latest or a path)") from None


def with_constant_weights(session: tf1.Session, fetch_names: Iterable[str],
                          config: tf1.ConfigProto | None = None) -> tf1.Session:
    """A new session on a copy of `session`'s graph in which each variable the named tensors (or ops)
    depend on is a constant holding its current value; tensor names are unchanged, `session` is closed.

    Inference never changes its weights, and as constants what is computed from them alone is
    computed once, by Grappler's constant folding at the first run, instead of at every run: chiefly
    the bfloat16 copies of the convolutions' weights, a large share of a one-image answer.

    A graph with lookup tables (a SavedModel from another exporter may keep its charset in one) is left
    as it is, and `session` returned: a table's contents live in the session, not in a variable, and
    the copy would start with empty ones.
    """
    if any("Table" in op.type for op in session.graph.get_operations()):
        return session
    nodes = sorted({name.split(":")[0] for name in fetch_names})
    with session.graph.as_default():
        graph_def = tf1.graph_util.convert_variables_to_constants(session, session.graph.as_graph_def(), nodes)
    session.close()
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    graph.finalize()
    return tf1.Session(graph=graph, config=config or session_config())
