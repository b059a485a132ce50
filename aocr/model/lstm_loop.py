"""Both directions of the encoder's LSTM in one loop of plain ops, for inference: BlockLSTMV2's forward
pass (no peepholes or clipping) with the same weights, faster where a request's batch is small.

BlockLSTMV2 multiplies [x_t, h_t-1] by all of its weights at every step. Here the inputs' share is one
matrix product over all steps before the loop (oneDNN's, large enough to run well), and the loop
multiplies only h_t-1, for both directions in the same iteration, CHUNK steps per iteration, so the
loop's own bookkeeping is paid once per CHUNK steps (4 was the best of 1, 4, 8 and 16 at batches of 1, 8
and 65). Its ops are TensorFlow Lite builtins.
"""

from __future__ import annotations

import tensorflow as tf

CHUNK = 4


def _gates_of_inputs(inputs: tf.Tensor, input_weights: tf.Tensor, bias: tf.Tensor, chunks: tf.Tensor) -> tf.Tensor:
    """inputs [T, B, D] -> their share of the gates' pre-activations with the bias, float32
    [chunks, CHUNK, B, 4U], the steps past T zero-padded."""
    steps, batch_size = tf.shape(inputs)[0], tf.shape(inputs)[1]
    padded = tf.pad(inputs, [[0, chunks * CHUNK - steps], [0, 0], [0, 0]])
    gates = tf.tensordot(padded, input_weights, axes=1) + bias
    return tf.reshape(gates, tf.stack([chunks, CHUNK, batch_size, bias.shape[0]]))


def _step(gates: tf.Tensor, state: tuple[tf.Tensor, tf.Tensor], recurrent_weights: tf.Tensor) -> tuple:
    """One step from its inputs' gates [B, 4U] and the state (cs, h), each [B, U]; returns the next state."""
    cs, h = state
    i, f, ci, o = tf.split(gates + tf.matmul(h, recurrent_weights), 4, axis=1)
    cs = tf.sigmoid(i) * tf.tanh(ci) + tf.sigmoid(f) * cs
    return cs, tf.sigmoid(o) * tf.tanh(cs)


def lstm_loop(inputs: list[tf.Tensor], weights: list[tf.Tensor], biases: list[tf.Tensor]) -> list[tf.Tensor]:
    """LSTM directions run side by side: each over its time-major inputs float32 [T, B, D] (all of the
    same shape) with its weights [D + U, 4U] and bias [4U] (aocr.model.block_lstm.lstm_variables).
    Returns each direction's hidden states float32 [T, B, U]."""
    steps, batch_size = tf.shape(inputs[0])[0], tf.shape(inputs[0])[1]
    batch, depth = inputs[0].shape[1], inputs[0].shape[2]  # static where known: batch may be None
    units = biases[0].shape[0] // 4
    chunks = (steps + CHUNK - 1) // CHUNK
    gates = [_gates_of_inputs(x, w[:depth], b, chunks) for x, w, b in zip(inputs, weights, biases, strict=True)]
    recurrent = [w[depth:] for w in weights]

    def one_chunk(n, states, arrays):
        states, arrays = list(states), list(arrays)
        for direction in range(len(inputs)):
            chunk_gates, hidden = gates[direction][n], []
            for k in range(CHUNK):
                states[direction] = _step(chunk_gates[k], states[direction], recurrent[direction])
                hidden.append(states[direction][1])
            arrays[direction] = arrays[direction].write(n, tf.stack(hidden))
        return n + 1, states, arrays

    zeros = tf.zeros(tf.stack([batch_size, units]))
    arrays = [tf.TensorArray(tf.float32, size=chunks, element_shape=[CHUNK, batch, units]) for _ in inputs]
    _, _, arrays = tf.while_loop(lambda n, *_: n < chunks, one_chunk,
                                 (tf.constant(0), [(zeros, zeros)] * len(inputs), arrays))
    hidden = [tf.reshape(array.stack(), tf.stack([-1, batch_size, units]))[:steps] for array in arrays]
    for states in hidden:  # static where the inputs' shape is (TensorFlow Lite needs it)
        states.set_shape([inputs[0].shape[0], batch, units])
    return hidden
