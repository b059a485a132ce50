"""Sessions, device placement and checkpoints, shared by every verb that runs the model."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import tensorflow as tf

from aocr.errors import AocrError, first_line_of

tf1 = tf.compat.v1


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


def latest_checkpoint(model_dir: str) -> str | None:
    return tf.train.latest_checkpoint(model_dir)


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
