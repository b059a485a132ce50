"""TensorBoard scalars written from Python values."""

from __future__ import annotations

import tensorflow as tf

tf1 = tf.compat.v1


def write_scalars(writer: tf1.summary.FileWriter, step: int, values: dict[str, float]) -> None:
    summary = tf1.Summary(value=[tf1.Summary.Value(tag=tag, simple_value=value) for tag, value in values.items()])
    writer.add_summary(summary, step)
    writer.flush()
