"""The bidirectional LSTM over the CNN's columns, on TensorFlow's fused BlockLSTMV2 kernel."""

from __future__ import annotations

import tensorflow as tf

from aocr.model.block_lstm import block_lstm

tf1 = tf.compat.v1


def bidirectional_lstm(features: tf.Tensor, lengths: tf.Tensor, units: int, fused: bool = True) -> tf.Tensor:
    """features: float32 [B, T, D]; lengths: int32 [B], the real columns of each image.

    Returns float32 [B, T, 2 * units], forward and backward states concatenated. The
    backward direction starts at each image's last real column, not at the padding. fused False: plain
    ops instead of BlockLSTMV2 (aocr.model.block_lstm.plain_lstm), for TensorFlow Lite.
    """
    time_major = tf.transpose(features, [1, 0, 2])
    with tf1.variable_scope("encoder"):
        with tf1.variable_scope("forward"):
            forward = block_lstm(time_major, units, fused)
        with tf1.variable_scope("backward"):
            reversed_inputs = tf.reverse_sequence(time_major, lengths, seq_axis=0, batch_axis=1)
            backward = tf.reverse_sequence(block_lstm(reversed_inputs, units, fused), lengths, seq_axis=0,
                                           batch_axis=1)
    return tf.transpose(tf.concat([forward, backward], axis=2), [1, 0, 2])
