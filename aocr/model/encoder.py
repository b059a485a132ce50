"""The bidirectional LSTM over the CNN's columns, on TensorFlow's fused BlockLSTMV2 kernel."""

from __future__ import annotations

import tensorflow as tf

tf1 = tf.compat.v1


def _block_lstm(inputs: tf.Tensor, units: int) -> tf.Tensor:
    """One LSTM direction over time-major inputs float32 [T, B, D]; returns hidden states [T, B, units]."""
    depth = inputs.shape[-1]
    weights = tf1.get_variable("kernel", [depth + units, 4 * units], initializer=tf1.glorot_uniform_initializer())
    # BlockLSTMV2's gate order is input, forget, cell, output (BlockLSTM's was input, cell,
    # forget, output); the forget gate starts at +1.
    bias = tf1.get_variable(
        "bias", [4 * units],
        initializer=tf1.constant_initializer([0.0] * units + [1.0] * units + [0.0] * (2 * units)))
    batch = tf.shape(inputs)[1]
    zeros = tf.zeros(tf.stack([batch, units]))
    no_peephole = tf.zeros([units])
    outputs = tf.raw_ops.BlockLSTMV2(
        seq_len_max=tf.cast(tf.shape(inputs)[0], tf.int64), x=inputs, cs_prev=zeros, h_prev=zeros,
        w=weights, wci=no_peephole, wcf=no_peephole, wco=no_peephole, b=bias,
        cell_clip=0.0, use_peephole=False)
    return outputs.h


def bidirectional_lstm(features: tf.Tensor, lengths: tf.Tensor, units: int) -> tf.Tensor:
    """features: float32 [B, T, D]; lengths: int32 [B], the real columns of each image.

    Returns float32 [B, T, 2 * units], forward and backward states concatenated. The
    backward direction starts at each image's last real column, not at the padding.
    """
    time_major = tf.transpose(features, [1, 0, 2])
    with tf1.variable_scope("encoder"):
        with tf1.variable_scope("forward"):
            forward = _block_lstm(time_major, units)
        with tf1.variable_scope("backward"):
            reversed_inputs = tf.reverse_sequence(time_major, lengths, seq_axis=0, batch_axis=1)
            backward = tf.reverse_sequence(_block_lstm(reversed_inputs, units), lengths, seq_axis=0, batch_axis=1)
    return tf.transpose(tf.concat([forward, backward], axis=2), [1, 0, 2])
