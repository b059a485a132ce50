"""The attention decoder: stacked LSTM (or GRU) layers, each with its own weights, reading the
encoder's columns through additive (Bahdanau) attention masked beyond each image's real width.

The attention is location-aware: each step's scores also see where the previous step looked
(a 1-D convolution of its weights), so stepping along the text from one character to the
next is easy to learn. Without it, the decoder spent hundreds of steps predicting label
statistics with attention spread over the whole image before it found the characters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import tensorflow as tf

from aocr.core.charset import EOS_ID, GO_ID

tf1 = tf.compat.v1

# Columns the location term sees around each column: a character is about 4 columns wide, so
# this covers the previous step's focus and the character after it.
LOCATION_WIDTH = 11


class _LSTMLayer:
    """One LSTM layer; state is (c, h), each float32 [B, units]."""

    def __init__(self, input_size: int, units: int) -> None:
        self.units = units
        self.kernel = tf1.get_variable("kernel", [input_size + units, 4 * units],
                                       initializer=tf1.glorot_uniform_initializer())
        self.bias = tf1.get_variable("bias", [4 * units], initializer=tf1.zeros_initializer())

    def initial_state(self, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.zeros_like(h), h

    def __call__(self, x: tf.Tensor, state: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tuple]:
        c, h = state
        gates = tf.matmul(tf.concat([x, h], axis=1), self.kernel) + self.bias
        i, j, f, o = tf.split(gates, 4, axis=1)
        c = tf.sigmoid(f + 1.0) * c + tf.sigmoid(i) * tf.tanh(j)
        h = tf.sigmoid(o) * tf.tanh(c)
        return h, (c, h)


class _GRULayer:
    """One GRU layer; state is h, float32 [B, units]."""

    def __init__(self, input_size: int, units: int) -> None:
        self.units = units
        self.gate_kernel = tf1.get_variable("gate_kernel", [input_size + units, 2 * units],
                                            initializer=tf1.glorot_uniform_initializer())
        self.gate_bias = tf1.get_variable("gate_bias", [2 * units], initializer=tf1.ones_initializer())
        self.candidate_kernel = tf1.get_variable("candidate_kernel", [input_size + units, units],
                                                 initializer=tf1.glorot_uniform_initializer())
        self.candidate_bias = tf1.get_variable("candidate_bias", [units], initializer=tf1.zeros_initializer())

    def initial_state(self, h: tf.Tensor) -> tf.Tensor:
        return h

    def __call__(self, x: tf.Tensor, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        gates = tf.sigmoid(tf.matmul(tf.concat([x, h], axis=1), self.gate_kernel) + self.gate_bias)
        reset, update = tf.split(gates, 2, axis=1)
        candidate = tf.tanh(tf.matmul(tf.concat([x, reset * h], axis=1), self.candidate_kernel)
                            + self.candidate_bias)
        h = update * h + (1.0 - update) * candidate
        return h, h


@dataclass
class DecoderOutputs:
    logits: tf.Tensor  # float32 [B, S, num_classes]
    ids: tf.Tensor  # int32 [B, S], the most likely class at each step
    attention: tf.Tensor  # float32 [B, S, T], each step's weights over the encoder columns


class Memory(NamedTuple):
    """What every step attends to, fixed for a decoding."""

    encoded: tf.Tensor  # float32 [B, T, D], the encoder's columns
    mask: tf.Tensor  # bool [B, T], False on columns beyond an image's width
    keys: tf.Tensor  # float32 [B, T, units], the columns projected for the attention scores


class DecoderState(NamedTuple):
    """What one step hands to the next; a tf.nest structure, so beam search can reorder its rows."""

    cells: list  # each layer's state: (c, h) for an LSTM, h for a GRU, each float32 [B, units]
    context: tf.Tensor  # float32 [B, D], the attention's read-out of the previous step
    weights: tf.Tensor  # float32 [B, T], the previous step's attention weights


def _initial_states(encoded: tf.Tensor, mask: tf.Tensor, cells: list) -> list:
    """Each layer's first state, from a summary of the image (the mean of its real columns), so the
    first character is predicted from what the image holds, not from nothing. Called inside the
    decoder's variable scope; encoded: float32 [B, T, D], mask: bool [B, T]."""
    real = tf.cast(mask, tf.float32)[:, :, None]
    summary = tf.reduce_sum(encoded * real, axis=1) / tf.maximum(tf.reduce_sum(real, axis=1), 1.0)  # [B, D]
    states = []
    for number, cell in enumerate(cells):
        with tf1.variable_scope(f"layer{number + 1}"):
            init_kernel = tf1.get_variable("init_kernel", [encoded.shape[-1], cell.units],
                                           initializer=tf1.glorot_uniform_initializer())
            init_bias = tf1.get_variable("init_bias", [cell.units], initializer=tf1.zeros_initializer())
        states.append(cell.initial_state(tf.tanh(tf.matmul(summary, init_kernel) + init_bias)))
    return states


class Decoder:
    """The decoder's weights (created in the current variable scope, "decoder") and its one step,
    which greedy decoding, teacher forcing and beam search (aocr.model.beam) all run."""

    def __init__(self, depth: int, num_classes: int, units: int, layers: int, embedding_size: int,
                 use_gru: bool) -> None:
        self.embedding = tf1.get_variable("embedding", [num_classes, embedding_size],
                                          initializer=tf1.random_uniform_initializer(-1.0, 1.0))
        layer_type = _GRULayer if use_gru else _LSTMLayer
        self.cells = []
        for number in range(layers):
            with tf1.variable_scope(f"layer{number + 1}"):
                self.cells.append(layer_type(embedding_size + depth if number == 0 else units, units))
        with tf1.variable_scope("attention"):
            self.key_kernel = tf1.get_variable("key_kernel", [depth, units],
                                               initializer=tf1.glorot_uniform_initializer())
            self.query_kernel = tf1.get_variable("query_kernel", [units, units],
                                                 initializer=tf1.glorot_uniform_initializer())
            self.score_vector = tf1.get_variable("score_vector", [units],
                                                 initializer=tf1.glorot_uniform_initializer())
            self.location_kernel = tf1.get_variable("location_kernel", [LOCATION_WIDTH, 1, units],
                                                    initializer=tf1.glorot_uniform_initializer())
        with tf1.variable_scope("output"):
            self.output_kernel = tf1.get_variable("kernel", [units + depth, num_classes],
                                                  initializer=tf1.glorot_uniform_initializer())
            self.output_bias = tf1.get_variable("bias", [num_classes], initializer=tf1.zeros_initializer())
        # Read once, outside the decoding loop: a frozen graph cannot turn a lookup into a variable
        # inside a tf.while_loop into a lookup into a constant.
        self.embedding_table = tf.identity(self.embedding)
        self.location_matrix = self.location_kernel[:, 0, :]  # [LOCATION_WIDTH, units]

    @staticmethod
    def _location_windows(weights: tf.Tensor) -> tf.Tensor:
        """weights float32 [B, T] -> [B, T, LOCATION_WIDTH], the weights around each column (zeros beyond
        the ends), which times location_matrix is a 1-D convolution with padding SAME: on a CPU, a convolution op
        of one input channel costs far more per decoder step than these few small ops."""
        half = LOCATION_WIDTH // 2
        padded = tf.pad(weights, [[0, 0], [half, half]])
        columns = tf.shape(weights)[1]
        return tf.stack([padded[:, offset:offset + columns] for offset in range(LOCATION_WIDTH)], axis=2)

    def step(self, previous: tf.Tensor, state: DecoderState, memory: Memory) -> tuple[tf.Tensor, DecoderState]:
        """previous: int32 [B], the class fed in (GO first). Returns the logits, float32 [B, num_classes],
        and the next state."""
        top, state = self.advance(tf.gather(self.embedding_table, previous), state, memory)
        return self.read_out(top, state.context), state

    def advance(self, embedded: tf.Tensor, state: DecoderState, memory: Memory) -> tuple[tf.Tensor, DecoderState]:
        """embedded: float32 [B, embedding_size], the class fed in. Returns the top layer's output,
        float32 [B, units], and the next state, whose context the read-out takes with it."""
        x = tf.concat([embedded, state.context], axis=1)
        cells = list(state.cells)
        for number, cell in enumerate(self.cells):
            x, cells[number] = cell(x, cells[number])
        query = tf.matmul(x, self.query_kernel)  # [B, units]
        location = tf.tensordot(self._location_windows(state.weights), self.location_matrix, axes=1)  # [B, T, units]
        scores = tf.reduce_sum(self.score_vector * tf.tanh(memory.keys + query[:, None, :] + location),
                               axis=2)  # [B, T]
        weights = tf.nn.softmax(tf.where(memory.mask, scores, tf.fill(tf.shape(scores), -1e9)))
        context = tf.einsum("bt,btd->bd", weights, memory.encoded)
        return x, DecoderState(cells, context, weights)

    def read_out(self, top: tf.Tensor, context: tf.Tensor) -> tf.Tensor:
        """Logits float32 [..., num_classes] from the top layer's output [..., units] and the context [..., D]."""
        return tf.tensordot(tf.concat([top, context], axis=-1), self.output_kernel, axes=1) + self.output_bias


def start_decoder(encoded: tf.Tensor, mask: tf.Tensor, num_classes: int, units: int, layers: int,
                  embedding_size: int, use_gru: bool) -> tuple[Decoder, Memory, DecoderState, tf.Tensor]:
    """The decoder's weights, what it attends to, its first state and its first input (GO, int32 [B]),
    for B rows of encoder columns.

    encoded: float32 [B, T, D]; mask: bool [B, T]. The ops are made in a fixed order, so a seeded
    training run draws the same initial weights every time.
    """
    batch = tf.shape(encoded)[0]
    depth = encoded.shape[-1]
    with tf1.variable_scope("decoder"):
        decoder = Decoder(depth, num_classes, units, layers, embedding_size, use_gru)
        memory = Memory(encoded, mask, tf.tensordot(encoded, decoder.key_kernel, axes=1))
        cells = _initial_states(encoded, mask, decoder.cells)
        context = tf.zeros(tf.stack([batch, depth]))
        # Before the first step, "the previous step looked at the first column": where the text starts.
        weights = tf.one_hot(tf.zeros(tf.expand_dims(batch, 0), tf.int32), tf.shape(memory.keys)[1])  # [B, T]
        go = tf.fill(tf.expand_dims(batch, 0), GO_ID)
    return decoder, memory, DecoderState(cells, context, weights), go


def pad_steps(stacked: tf.Tensor, steps: int, axis: int, value: float | int = 0) -> tf.Tensor:
    """`stacked`, whose axis `axis` holds the S' <= steps steps of a decoding that stopped early,
    filled with `value` to `steps` along that axis (which then has a static size)."""
    padding = [[0, 0]] * stacked.shape.rank
    padding[axis] = [0, steps - tf.shape(stacked)[axis]]
    padded = tf.pad(stacked, padding, constant_values=value)
    shape = stacked.shape.as_list()
    shape[axis] = steps
    padded.set_shape(shape)
    return padded


def attention_decode(encoded: tf.Tensor, mask: tf.Tensor, num_classes: int, steps: int, units: int,
                     layers: int, embedding_size: int, use_gru: bool,
                     decoder_inputs: tf.Tensor | None = None) -> DecoderOutputs:
    """Decode `steps` characters from the encoder's columns, in a tf.while_loop: the graph's size does
    not grow with `steps`.

    encoded: float32 [B, T, D]; mask: bool [B, T], False on columns beyond an image's width.
    decoder_inputs: int32 [B, steps], GO then the label, for teacher forcing in training
    and evaluation; None for greedy decoding, which feeds back each step's most likely class and
    stops once every image has emitted EOS (the steps not run are zero logits and attention, PAD ids).
    """
    decoder, memory, state, previous = start_decoder(encoded, mask, num_classes, units, layers, embedding_size,
                                                     use_gru)
    if decoder_inputs is not None:
        return _teacher_forced(decoder, memory, state, decoder_inputs, steps)
    return _greedy(decoder, memory, state, previous, steps)


def _arrays(steps: int, *element_shapes: tuple[tf.DType, list]) -> list[tf.TensorArray]:
    return [tf.TensorArray(dtype, size=steps, element_shape=shape) for dtype, shape in element_shapes]


def _batch_major(array: tf.TensorArray) -> tf.Tensor:
    """[S, B, ...] stacked steps -> [B, S, ...]."""
    return tf.transpose(array.stack(), [1, 0, *range(2, array.element_shape.rank + 1)])


def _teacher_forced(decoder: Decoder, memory: Memory, state: DecoderState, decoder_inputs: tf.Tensor,
                    steps: int) -> DecoderOutputs:
    """Every step fed its label's class; the loop runs the recurrent part only, and the read-out of all
    steps is one matrix product after it."""
    embedded = tf.transpose(tf.gather(decoder.embedding_table, decoder_inputs), [1, 0, 2])  # [S, B, E]
    batch, columns, depth = memory.encoded.shape  # static where the input's shape is (TensorFlow Lite needs it)
    outputs = _arrays(steps, (tf.float32, [batch, decoder.cells[-1].units]), (tf.float32, [batch, depth]),
                      (tf.float32, [batch, columns]))

    def one_step(step, state, outputs):
        top, state = decoder.advance(embedded[step], state, memory)
        return step + 1, state, [array.write(step, value) for array, value in
                                 zip(outputs, (top, state.context, state.weights), strict=True)]

    loop = tf.while_loop(lambda step, _state, _outputs: step < steps, one_step, (tf.constant(0), state, outputs),
                         maximum_iterations=steps)
    top, context, weights = (_batch_major(array) for array in loop[-1])
    logits = decoder.read_out(top, context)
    return DecoderOutputs(logits, tf.argmax(logits, axis=2, output_type=tf.int32), weights)


def _greedy(decoder: Decoder, memory: Memory, state: DecoderState, previous: tf.Tensor, steps: int) -> DecoderOutputs:
    """Each step fed the previous step's most likely class, until every image has emitted EOS."""
    batch, columns, _ = memory.encoded.shape  # static where the input's shape is (TensorFlow Lite needs it)
    num_classes = decoder.output_bias.shape[0]
    outputs = _arrays(steps, (tf.float32, [batch, num_classes]), (tf.int32, [batch]), (tf.float32, [batch, columns]))

    def more(step, _previous, _state, finished, _outputs):
        return tf.logical_and(step < steps, tf.logical_not(tf.reduce_all(finished)))

    def one_step(step, previous, state, finished, outputs):
        logits, state = decoder.step(previous, state, memory)
        ids = tf.argmax(logits, axis=1, output_type=tf.int32)
        written = [array.write(step, value) for array, value in zip(outputs, (logits, ids, state.weights), strict=True)]
        return step + 1, ids, state, tf.logical_or(finished, tf.equal(ids, EOS_ID)), written

    loop = tf.while_loop(more, one_step, (tf.constant(0), previous, state, tf.zeros_like(previous, tf.bool), outputs),
                         maximum_iterations=steps)
    logits, ids, weights = (_batch_major(array) for array in loop[-1])
    return DecoderOutputs(pad_steps(logits, steps, 1), pad_steps(ids, steps, 1), pad_steps(weights, steps, 1))
