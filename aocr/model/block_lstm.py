"""One LSTM direction on TensorFlow's fused BlockLSTMV2 kernel, with a gradient of our own.

The gradient TensorFlow registers for BlockLSTMV2 is wrong. In tensorflow/python/ops/rnn_grad.py
(checked in 2.21) one Python function is registered for both BlockLSTM and BlockLSTMV2, and it
calls the V1 gradient kernel, BlockLSTMGrad, which expects V1's gate layout in w and b (input,
cell, forget, output: ICFO). BlockLSTMV2's forward kernel lays them out as input, forget, cell,
output (IFCO), so the forget and cell columns of the weight and bias gradients are swapped, and
the gradients passed back to the inputs and through the recurrence go through the wrong columns
of w. The V2 gradient kernel, BlockLSTMGradV2, exists and is correct (it agrees with finite
differences); only the Python registration fails to call it, so every device is hit alike.
docs/upstream/blocklstmv2-gradient.md is the report for TensorFlow, with a reproduction.

Ours is registered under GRADIENT_NAME and mapped onto the op in block_lstm(). It agrees with
BlockLSTMGradV2 called directly and is faster than it (benchmarks/blocklstm_gradient.py measures
both), because only the recurrence runs step by step: the
weight and input gradients are one large matrix product each over all steps. tests/test_model.py
checks it against finite differences and against BlockLSTMGradV2.
"""

from __future__ import annotations

import tensorflow as tf

tf1 = tf.compat.v1

GRADIENT_NAME = "AocrBlockLSTMV2"


@tf.RegisterGradient(GRADIENT_NAME)
def _block_lstm_gradient(op: tf.Operation, *output_gradients: tf.Tensor) -> list[tf.Tensor | None]:
    """Gradient of BlockLSTMV2 without peepholes or cell clipping, through its h output only
    (the encoder uses no other output).

    Inputs: x [T, B, D], cs_prev and h_prev [B, U], w [D + U, 4U], b [4U]. Outputs i, cs, f,
    o, ci, co, h, each [T, B, U]; gate pre-activations are x_t, h_{t-1} times w plus b.
    """
    x, cs_prev, h_prev, w = op.inputs[1], op.inputs[2], op.inputs[3], op.inputs[4]
    i, cs, f, o, ci, co, h = op.outputs
    dh_outputs = output_gradients[6]
    depth = tf.shape(x)[2]
    cs_before = tf.concat([cs_prev[None], cs[:-1]], axis=0)
    # Each gate's pre-activation gradient is dcs (i, f, cell) or dh (output) times a factor
    # known from the forward pass: computed for all steps at once, outside the loop.
    dcs_factors = tf.concat([ci * i * (1 - i), cs_before * f * (1 - f), i * (1 - ci * ci)], axis=2)  # [T, B, 3U]
    dh_factor = co * o * (1 - o)  # [T, B, U]
    dcs_from_dh = o * (1 - co * co)  # [T, B, U]
    w_h = w[depth:]

    def step_back(t, dh_next, dcs_next, gate_gradients):
        dh = dh_outputs[t] + dh_next
        dcs = dh * dcs_from_dh[t] + dcs_next
        dgates = tf.concat([tf.tile(dcs, [1, 3]) * dcs_factors[t], dh * dh_factor[t]], axis=1)  # [B, 4U]
        return (t - 1, tf.matmul(dgates, w_h, transpose_b=True), dcs * f[t],
                gate_gradients.write(t, dgates))

    steps = tf.shape(x)[0]
    _, dh_prev, dcs_prev, gate_gradients = tf.while_loop(
        lambda t, *_: t >= 0, step_back,
        (steps - 1, tf.zeros_like(h_prev), tf.zeros_like(cs_prev), tf.TensorArray(x.dtype, size=steps)))
    dgates = gate_gradients.stack()  # [T, B, 4U]
    inputs = tf.concat([x, tf.concat([h_prev[None], h[:-1]], axis=0)], axis=2)  # [T, B, D + U]
    flat_dgates = tf.reshape(dgates, [-1, tf.shape(dgates)[2]])
    dw = tf.matmul(tf.reshape(inputs, [-1, tf.shape(inputs)[2]]), flat_dgates, transpose_a=True)
    dx = tf.tensordot(dgates, w[:depth], axes=[[2], [1]])
    db = tf.reduce_sum(flat_dgates, axis=0)
    # Inputs: seq_len_max, x, cs_prev, h_prev, w, wci, wcf, wco, b.
    return [None, dx, dcs_prev, dh_prev, dw, None, None, None, db]


def lstm_variables(depth: int, units: int) -> tuple[tf.Variable, tf.Variable]:
    """One direction's weights [depth + units, 4 units] and bias [4 units], in the current variable scope,
    in BlockLSTMV2's gate order (input, forget, cell, output); the forget gate's bias starts at +1."""
    weights = tf1.get_variable("kernel", [depth + units, 4 * units], initializer=tf1.glorot_uniform_initializer())
    bias = tf1.get_variable(
        "bias", [4 * units],
        initializer=tf1.constant_initializer([0.0] * units + [1.0] * units + [0.0] * (2 * units)))
    return weights, bias


def block_lstm(inputs: tf.Tensor, weights: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """One LSTM direction over time-major inputs float32 [T, B, D] on BlockLSTMV2, with weights and bias
    from lstm_variables; returns the hidden states [T, B, units]."""
    units = bias.shape[0] // 4
    zeros = tf.zeros(tf.stack([tf.shape(inputs)[1], units]))
    no_peephole = tf.zeros([units])
    with tf1.get_default_graph().gradient_override_map({"BlockLSTMV2": GRADIENT_NAME}):
        outputs = tf.raw_ops.BlockLSTMV2(
            seq_len_max=tf.cast(tf.shape(inputs)[0], tf.int64), x=inputs, cs_prev=zeros, h_prev=zeros,
            w=weights, wci=no_peephole, wcf=no_peephole, wco=no_peephole, b=bias,
            cell_clip=0.0, use_peephole=False)
    return outputs.h
