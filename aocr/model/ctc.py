"""The CTC head: a linear read-out of the encoder columns, trained with CTC, and its decodings.

Class ids are the decoder's (PAD, GO, EOS, characters), with PAD as CTC's blank; GO and EOS are never
targets, so the head learns to leave them out. Decodings return the attention decoder's format: ids
int32 [N, S] with EOS after the last character, so one code turns either into text.
"""

from __future__ import annotations

import tensorflow as tf

from aocr.core.charset import EOS_ID, FIRST_CHAR_ID, PAD_ID

tf1 = tf.compat.v1


def ctc_logits(encoded: tf.Tensor, num_classes: int) -> tf.Tensor:
    """encoded: float32 [B, T, D] -> logits float32 [B, T, num_classes] (variables ctc/kernel, ctc/bias)."""
    with tf1.variable_scope("ctc", reuse=tf1.AUTO_REUSE):
        kernel = tf1.get_variable("kernel", [encoded.shape[-1], num_classes],
                                  initializer=tf1.glorot_uniform_initializer())
        bias = tf1.get_variable("bias", [num_classes], initializer=tf1.zeros_initializer())
    return tf.tensordot(encoded, kernel, axes=1) + bias


def _targets(label_ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """label_ids int32 [B, L] (characters, then EOS or PAD) -> dense labels int32 [B, L] (0 past the end)
    and lengths int32 [B]."""
    is_char = label_ids >= FIRST_CHAR_ID
    return tf.where(is_char, label_ids, tf.zeros_like(label_ids)), tf.reduce_sum(tf.cast(is_char, tf.int32), axis=1)


def _negative_log_likelihood(labels: tf.Tensor, logits: tf.Tensor, columns: tf.Tensor) -> tf.Tensor:
    """-log P(labels | logits) per image, summed over every alignment: labels int32 [B, L] (characters, 0 past
    the end), logits float32 [B, T, C], columns int32 [B]. inf for a label the image is too narrow to hold.

    TensorFlow's CTC kernel (sparse labels) is many times faster on a CPU than its op-by-op dense path, but
    it takes the blank as the last class and refuses empty labels: the logits are rolled to put PAD last,
    and an empty label's likelihood, that of a gap in every column, is computed apart.
    """
    lengths = tf.reduce_sum(tf.cast(labels > 0, tf.int32), axis=1)
    empty = tf.equal(lengths, 0)
    first = tf.equal(tf.range(tf.shape(labels)[1]), 0)[None, :]
    stand_in = tf.where(tf.logical_and(empty[:, None], first), tf.fill(tf.shape(labels), FIRST_CHAR_ID), labels)
    shifted = tf.sparse.from_dense(tf.where(stand_in > 0, stand_in - 1, tf.zeros_like(stand_in)))
    rolled = tf.concat([logits[:, :, 1:], logits[:, :, :1]], axis=2)
    kernel = tf1.nn.ctc_loss(shifted, rolled, columns, preprocess_collapse_repeated=False, ctc_merge_repeated=True,
                             ignore_longer_outputs_than_inputs=True, time_major=False)
    # A repeated character needs a gap between its two columns.
    repeats = tf.reduce_sum(tf.cast(tf.logical_and(tf.equal(labels[:, 1:], labels[:, :-1]), labels[:, 1:] > 0),
                                    tf.int32), axis=1)
    too_narrow = lengths + repeats > columns
    real = tf.sequence_mask(columns, tf.shape(logits)[1])
    gaps = -tf.reduce_sum(tf.where(real, tf.nn.log_softmax(logits)[:, :, PAD_ID], tf.zeros_like(logits[:, :, 0])),
                          axis=1)
    return tf.where(empty, gaps, tf.where(too_narrow, tf.fill(tf.shape(kernel), float("inf")), kernel))


def ctc_loss(logits: tf.Tensor, columns: tf.Tensor, label_ids: tf.Tensor) -> tf.Tensor:
    """Mean CTC loss per label character: logits float32 [B, T, C]; columns int32 [B], the real columns;
    label_ids int32 [B, L] (GO, characters, EOS, PAD)."""
    labels, lengths = _targets(label_ids[:, 1:])
    per_image = _negative_log_likelihood(labels, logits, columns)
    # An image too narrow for its label has an infinite CTC loss: it teaches nothing here.
    usable = tf.logical_and(tf.math.is_finite(per_image), lengths > 0)
    per_char = per_image / tf.cast(tf.maximum(lengths, 1), tf.float32)
    return tf.reduce_mean(tf.where(usable, per_char, tf.zeros_like(per_char)))


def sequence_log_likelihood(logits: tf.Tensor, columns: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """log P(text | image) under CTC, summed over every alignment, of K texts per image.

    logits: float32 [N, T, C]; columns: int32 [N]; ids: int32 [N, K, S], characters then EOS.
    Returns float32 [N, K]; -inf for a text the image is too narrow to hold.
    """
    count, width, steps = tf.shape(ids)[0], tf.shape(ids)[1], tf.shape(ids)[2]
    after_eos = tf.cumsum(tf.cast(tf.equal(ids, EOS_ID), tf.int32), axis=2) > 0
    texts = tf.reshape(tf.where(after_eos, tf.zeros_like(ids), ids), [count * width, steps])
    labels, _ = _targets(texts)
    tiled_logits = tf.repeat(logits, width, axis=0)
    tiled_columns = tf.repeat(columns, width, axis=0)
    negative = _negative_log_likelihood(labels, tiled_logits, tiled_columns)
    return tf.reshape(-negative, [count, width])


def greedy_decode(logits: tf.Tensor, columns: tf.Tensor, steps: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Best path decoding: each column's likeliest class, repeats merged, blanks dropped.

    logits: float32 [N, T, C]; columns: int32 [N]; steps: S, the answer's length through EOS (texts
    are cut to S - 1 characters). Returns ids int32 [N, S] (EOS after the text), each step's probability
    float32 [N, S] (a character's: its columns' highest; EOS's: the lowest of the columns read as gaps; 1
    after it), and the columns each character
    was read from as weights float32 [N, S, T] (evenly over its columns; the EOS row is 0).
    """
    probabilities = tf.nn.softmax(logits)
    best = tf.argmax(logits, axis=2, output_type=tf.int32)  # [N, T]
    best_probability = tf.reduce_max(probabilities, axis=2)
    count, width = tf.shape(best)[0], tf.shape(best)[1]
    real = tf.sequence_mask(columns, width)
    previous = tf.concat([tf.fill([count, 1], -1), best[:, :-1]], axis=1)
    is_char = tf.logical_and(real, best >= FIRST_CHAR_ID)
    starts = tf.logical_and(is_char, tf.not_equal(best, previous))
    position = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1  # [N, T]: the character each column belongs to
    kept = tf.logical_and(is_char, position < steps - 1)
    rows = tf.range(count)[:, None] * steps
    segments = tf.where(kept, rows + position, tf.fill(tf.shape(position), count * steps))  # the last: discarded
    flat_segments = tf.reshape(segments, [-1])
    char_ids = tf.math.unsorted_segment_max(tf.reshape(best, [-1]), flat_segments, count * steps + 1)[:-1]
    char_probability = tf.math.unsorted_segment_max(tf.reshape(best_probability, [-1]), flat_segments,
                                                    count * steps + 1)[:-1]
    length = tf.minimum(tf.reduce_sum(tf.cast(starts, tf.int32), axis=1), steps - 1)  # [N]
    has_char = tf.sequence_mask(length, steps)  # [N, S]
    ids = tf.where(has_char, tf.reshape(char_ids, [count, steps]), tf.fill([count, steps], EOS_ID))
    # The end's probability: that of the least sure column read as a gap, so that a reading of blanks is as
    # unsure as its columns are.
    is_gap = tf.logical_and(real, tf.logical_not(is_char))
    gap_probability = tf.reduce_min(tf.where(is_gap, best_probability, tf.ones_like(best_probability)), axis=1)
    is_end = tf.equal(tf.range(steps)[None, :], length[:, None])
    end_probability = tf.where(is_end, tf.tile(gap_probability[:, None], [1, steps]), tf.ones([count, steps]))
    step_probability = tf.where(has_char, tf.reshape(char_probability, [count, steps]), end_probability)
    one_hot = tf.one_hot(tf.where(kept, position, tf.fill(tf.shape(position), -1)), steps, axis=1)  # [N, S, T]
    weights = one_hot / tf.maximum(tf.reduce_sum(one_hot, axis=2, keepdims=True), 1.0)
    return ids, step_probability, weights


def beam_decode(logits: tf.Tensor, columns: tf.Tensor, steps: int, beam_width: int,
                top_paths: int) -> tuple[tf.Tensor, tf.Tensor]:
    """CTC beam search (TensorFlow's, summing the alignments of each prefix): the top_paths likeliest texts.

    logits: float32 [N, T, C]; columns: int32 [N]. Returns ids int32 [N, top_paths, S] (EOS after each text)
    and each text's log-probability float32 [N, top_paths]. A text longer than the S - 1 characters the model
    answers is cut, and its log-probability set to -inf (probability 0), so it comes last.
    """
    # TensorFlow's decoder takes the last class as the blank: move PAD (0) there.
    rolled = tf.concat([logits[:, :, 1:], logits[:, :, :1]], axis=2)
    paths, log_probabilities = tf.nn.ctc_beam_search_decoder(
        tf.transpose(rolled, [1, 0, 2]), columns, beam_width=beam_width, top_paths=top_paths)
    count = tf.shape(logits)[0]
    texts, too_long = [], []
    for path in paths:
        dense = tf.cast(tf.sparse.to_dense(path, default_value=-1), tf.int32) + 1  # our ids; 0 (PAD) past the end
        dense = tf.pad(dense, [[0, count - tf.shape(dense)[0]], [0, steps]])
        too_long.append(dense[:, steps - 1] > 0)
        dense = tf.concat([dense[:, :steps - 1], tf.zeros([count, 1], tf.int32)], axis=1)
        texts.append(tf.where(dense >= FIRST_CHAR_ID, dense, tf.fill(tf.shape(dense), EOS_ID)))
    log_probabilities = tf.where(tf.stack(too_long, axis=1), tf.fill(tf.shape(log_probabilities), -float("inf")),
                                 log_probabilities)
    order = tf.argsort(log_probabilities, axis=1, direction="DESCENDING", stable=True)
    return (tf.gather(tf.stack(texts, axis=1), order, batch_dims=1),
            tf.gather(log_probabilities, order, batch_dims=1))
