"""The bidirectional LSTM over the CNN's columns: on TensorFlow's fused BlockLSTMV2 kernel in training
(with our gradient, aocr.model.block_lstm), in a loop of plain ops for inference (aocr.model.lstm_loop)."""

from __future__ import annotations

import tensorflow as tf

from aocr.model.block_lstm import block_lstm, lstm_variables
from aocr.model.lstm_loop import lstm_loop

tf1 = tf.compat.v1


def bidirectional_lstm(features: tf.Tensor, lengths: tf.Tensor, units: int, training: bool) -> tf.Tensor:
    """features: float32 [B, T, D]; lengths: int32 [B], the real columns of each image.

    Returns float32 [B, T, 2 * units], forward and backward states concatenated. The
    backward direction starts at each image's last real column, not at the padding.
    """
    time_major = tf.transpose(features, [1, 0, 2])
    inputs = [time_major, tf.reverse_sequence(time_major, lengths, seq_axis=0, batch_axis=1)]
    variables = []
    with tf1.variable_scope("encoder"):
        for name in ("forward", "backward"):
            with tf1.variable_scope(name):
                variables.append(lstm_variables(features.shape[-1], units))
        weights, biases = zip(*variables, strict=True)
        if training:
            forward, backward = (block_lstm(x, w, b) for x, w, b in zip(inputs, weights, biases, strict=True))
        else:
            forward, backward = lstm_loop(inputs, list(weights), list(biases))
    backward = tf.reverse_sequence(backward, lengths, seq_axis=0, batch_axis=1)
    return tf.transpose(tf.concat([forward, backward], axis=2), [1, 0, 2])
