"""The graph builder: one function for training and inference, with the same
variable names in every mode so one checkpoint serves train, test, predict and export."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import tensorflow as tf

from aocr.core.charset import EOS_ID, FIRST_CHAR_ID, PAD_ID
from aocr.core.params import GREEDY, Decoding, ModelParams
from aocr.core.precision import inference_compute_dtype
from aocr.model import ctc
from aocr.model.beam import beam_decode
from aocr.model.cnn import WIDTH_STRIDE, cnn_features
from aocr.model.decoder import attention_decode
from aocr.model.encoder import bidirectional_lstm
from aocr.model.lexicon import Lexicon

Mode = Literal["train", "infer"]

# Joint decoding: the attention decoder's beam, each hypothesis scored by
# (1 - JOINT_CTC_WEIGHT) * log P_attention + JOINT_CTC_WEIGHT * log P_CTC, with at least JOINT_BEAM_WIDTH hypotheses.
JOINT_CTC_WEIGHT = 0.3
JOINT_BEAM_WIDTH = 4

# Weight of the auxiliary CTC loss on the encoder columns. CTC makes the encoder line up
# characters with columns from the first steps, which the attention then finds: without it
# the decoder sits for hundreds of steps on a plateau where it only learns label statistics.
CTC_WEIGHT = 1.0

# The alignment prior (guided attention): early in training, attention far from where the
# n-th of L characters would sit if the text spread evenly over the image's width is
# penalized. It only points the attention the right way: its weight falls as the decoder's
# loss falls (it is a quarter at perplexity 1.4) and fades to zero over ALIGNMENT_PRIOR_STEPS,
# so text that is not spread evenly is learned as it is once the attention has found it.
ALIGNMENT_PRIOR_WEIGHT = 1.0
ALIGNMENT_PRIOR_STEPS = 1500
ALIGNMENT_PRIOR_WIDTH = 0.25  # tolerance, as a share of the image's width
ALIGNMENT_PRIOR_FULL_LOSS = math.log(4.0)  # full weight while the perplexity is 4 or more


def alignment_prior_loss(attention: tf.Tensor, columns: tf.Tensor, label_ids: tf.Tensor) -> tf.Tensor:
    """Mean attention mass far from the evenly spread position of each character.

    attention: float32 [B, S, T]; columns: int32 [B]; label_ids: int32 [B, S + 1] (GO,
    characters, EOS, PAD). Steps past the last character (EOS, padding) are not penalized.
    """
    characters = label_ids[:, 1:]
    lengths = tf.reduce_sum(tf.cast(characters >= FIRST_CHAR_ID, tf.float32), axis=1)  # [B]
    steps = tf.shape(attention)[1]
    step_position = (tf.range(steps, dtype=tf.float32)[None, :] + 0.5) / tf.maximum(lengths, 1.0)[:, None]  # [B, S]
    column_position = ((tf.range(tf.shape(attention)[2], dtype=tf.float32)[None, :] + 0.5)
                       / tf.cast(tf.maximum(columns, 1), tf.float32)[:, None])  # [B, T]
    distance = step_position[:, :, None] - column_position[:, None, :]  # [B, S, T]
    penalty = 1.0 - tf.exp(-tf.square(distance) / (2.0 * ALIGNMENT_PRIOR_WIDTH ** 2))
    is_char = tf.cast(characters[:, :steps] >= FIRST_CHAR_ID, tf.float32)  # [B, S]
    per_step = tf.reduce_sum(attention * penalty, axis=2) * is_char
    return tf.reduce_sum(per_step) / tf.maximum(tf.reduce_sum(is_char), 1.0)


def alignment_prior_weight(global_step: tf.Tensor, sequence_loss: tf.Tensor) -> tf.Tensor:
    """ALIGNMENT_PRIOR_WEIGHT, scaled down linearly to 0 at ALIGNMENT_PRIOR_STEPS, and in proportion
    to the decoder's loss (a scalar) below ALIGNMENT_PRIOR_FULL_LOSS."""
    progress = tf.cast(global_step, tf.float32) / float(ALIGNMENT_PRIOR_STEPS)
    unaligned = tf.minimum(1.0, tf.stop_gradient(sequence_loss) / ALIGNMENT_PRIOR_FULL_LOSS)
    return ALIGNMENT_PRIOR_WEIGHT * tf.maximum(0.0, 1.0 - progress) * unaligned


def encode(images: tf.Tensor, widths: tf.Tensor, params: ModelParams, training: bool,
           cnn_dtype: tf.DType = tf.float32) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, list]:
    """The CNN and the encoder: images float32 [B, H, W, C], widths int32 [B] -> encoded float32
    [B, T, D] (T = W / 4), columns int32 [B] (real columns), mask bool [B, T], and the batch norm
    update ops (training only)."""
    features, bn_updates = cnn_features(images, widths, training=training, compute_dtype=cnn_dtype,
                                         network=params.cnn)
    columns = widths // WIDTH_STRIDE
    encoded = bidirectional_lstm(features, columns, params.encoder_units, training)
    mask = tf.sequence_mask(columns, tf.shape(encoded)[1])
    return encoded, columns, mask, bn_updates


@dataclass
class ModelOutputs:
    logits: tf.Tensor | None  # float32 [B, S, num_classes], S = max_prediction + 1 (None: a CTC model)
    ids: tf.Tensor | None  # int32 [B, S]
    attention: tf.Tensor | None  # float32 [B, S, T], T = W / 4 encoder columns
    loss: tf.Tensor | None  # scalar, the training objective: decoder cross-entropy + CTC_WEIGHT * CTC (train)
    sequence_loss: tf.Tensor | None  # scalar, the decoder's mean cross-entropy per target character (a CTC
    # model: its CTC loss per character)
    batch_norm_updates: list  # ops to run with each training step (train only)


def build_model(images: tf.Tensor, widths: tf.Tensor, params: ModelParams, mode: Mode,
                label_ids: tf.Tensor | None = None, cnn_dtype: tf.DType = tf.float32,
                global_step: tf.Tensor | None = None) -> ModelOutputs:
    """images: float32 [B, H, W, C] (0-255, H = params.image_height, W a multiple of 4); widths: int32 [B] real widths.

    label_ids: int32 [B, max_prediction + 2] (GO, characters, EOS, PAD...), needed for
    "train", which decodes with teacher forcing and returns the loss; "infer"
    decodes greedily and needs none. cnn_dtype: the convolutions' arithmetic (see aocr.core.precision).
    global_step: the training step, which fades the alignment prior out ("train" only).
    A model of params.decoder "ctc" has no attention decoder: "train" only, and its outputs are the CTC head's.
    """
    encoded, columns, mask, bn_updates = encode(images, widths, params, mode == "train", cnn_dtype)
    if params.decoder == "ctc":
        loss = ctc.ctc_loss(ctc.ctc_logits(encoded, params.char_table.num_classes), columns, label_ids)
        return ModelOutputs(None, None, None, loss, loss, bn_updates)
    teacher = None if mode == "infer" else label_ids[:, :-1]
    decoded = attention_decode(
        encoded, mask, params.char_table.num_classes, params.decoder_steps, params.attn_num_hidden,
        params.attn_num_layers, params.target_embedding_size, params.use_gru, decoder_inputs=teacher)
    loss = sequence_loss = None
    if mode != "infer":
        targets = label_ids[:, 1:]
        weights = tf.cast(tf.not_equal(targets, PAD_ID), tf.float32)
        cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=decoded.logits)
        sequence_loss = tf.reduce_sum(cross_entropy * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
        ctc_logits = ctc.ctc_logits(encoded, params.char_table.num_classes)
        loss = sequence_loss + CTC_WEIGHT * ctc.ctc_loss(ctc_logits, columns, label_ids)
        if global_step is not None and ALIGNMENT_PRIOR_WEIGHT > 0:
            prior_weight = alignment_prior_weight(global_step, sequence_loss)
            loss += prior_weight * alignment_prior_loss(decoded.attention, columns, label_ids)
    return ModelOutputs(decoded.logits, decoded.ids, decoded.attention, loss, sequence_loss, bn_updates)


@dataclass
class Candidates:
    """Each image's best answers, best first (M = the n-best count; S = max_prediction + 1 decoder steps)."""

    texts: tf.Tensor  # string [N, M]
    probabilities: tf.Tensor  # float64 [N, M], product of the chosen characters' probabilities through EOS
    char_probabilities: tf.Tensor  # float32 [N, M, S], each character's probability, 0 from EOS on


@dataclass
class Recognition:
    text: tf.Tensor  # string [N]
    probability: tf.Tensor  # float64 [N], product of the chosen characters' probabilities through EOS
    char_probabilities: tf.Tensor  # float32 [N, S], each character's probability, 0 from EOS on
    attention: tf.Tensor  # float32 [N, S, T]
    widths: tf.Tensor  # int32 [N], each image's width in the CNN's input, in pixels
    candidates: Candidates  # the decoding.n_best best answers; the first is text and probability
    unconstrained: Candidates | None = None  # with a lexicon: the greedy reading without it (M = 1)


def _candidates(ids: tf.Tensor, step_probabilities: tf.Tensor, params: ModelParams) -> Candidates:
    """ids: int32 [N, M, S]; step_probabilities: float32 [N, M, S], each step's chosen class's."""
    # Steps after the first EOS are not part of the answer: no text, no probability.
    is_eos = tf.cast(tf.equal(ids, EOS_ID), tf.int32)
    after_eos = tf.cumsum(is_eos, axis=2, exclusive=True) > 0
    chars = tf.gather(tf.constant(params.char_table.id_table()), ids)
    texts = tf.strings.reduce_join(tf.where(after_eos, tf.zeros_like(chars), chars), axis=2)
    probabilities = tf.reduce_prod(tf.where(after_eos, tf.ones_like(step_probabilities), step_probabilities), axis=2)
    from_eos = tf.cumsum(is_eos, axis=2) > 0
    characters = tf.where(from_eos, tf.zeros_like(step_probabilities), step_probabilities)
    return Candidates(texts, tf.cast(probabilities, tf.float64), characters)


def recognize_pixels(images: tf.Tensor, widths: tf.Tensor, params: ModelParams, decoding: Decoding = GREEDY,
                     lexicon: Lexicon | None = None) -> Recognition:
    """The inference graph from preprocessed images to text.

    images: float32 [N, H, W, C], 0-255, each resized to height H = params.image_height and zero-padded;
    widths: int32 [N], each image's width before the padding. decoding.decoder picks the head (None: the
    model's own head, params.decoder): "attention" decodes greedily at decoding.beam_width 1, and by beam
    search (aocr.model.beam) at more or with a lexicon (decoding.lexicon, loaded); "ctc" reads the CTC head
    (aocr.model.ctc), by best path at beam width 1; "joint" rescores the attention beam with the CTC head.
    """
    decoder = decoding.decoder or params.decoder
    encoded, columns, mask, _ = encode(images, widths, params, training=False,
                                       cnn_dtype=inference_compute_dtype(decoding.precision))
    shape = (params.char_table.num_classes, params.decoder_steps, params.attn_num_hidden, params.attn_num_layers,
             params.target_embedding_size, params.use_gru)
    unconstrained = None
    if decoder == "ctc":
        ids, step_probabilities, attention = _ctc_answers(ctc.ctc_logits(encoded, shape[0]), columns, params,
                                                          decoding)
    elif decoding.beam_width == 1 and lexicon is None and decoder == "attention":
        free = attention_decode(encoded, mask, *shape)
        (ids, step_probabilities), attention = _greedy_answer(free.ids, free.logits), free.attention
    else:
        beam_width = max(decoding.beam_width, JOINT_BEAM_WIDTH) if decoder == "joint" else decoding.beam_width
        beams = beam_decode(encoded, mask, *shape, beam_width, lexicon)
        ids, step_probabilities, attention = beams.ids, beams.step_probabilities, beams.attention
        if decoder == "joint":
            logits = ctc.ctc_logits(encoded, shape[0])
            ids, step_probabilities = _rescored(ids, step_probabilities, logits, columns)
        if lexicon is not None:
            with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(), reuse=True):
                free = attention_decode(encoded, mask, *shape)
            unconstrained = _candidates(*_greedy_answer(free.ids, free.logits), params)
    best = _candidates(ids[:, :decoding.n_best], step_probabilities[:, :decoding.n_best], params)
    return Recognition(best.texts[:, 0], best.probabilities[:, 0], best.char_probabilities[:, 0], attention, widths,
                       best, unconstrained)


def greedy_reading(images: tf.Tensor, widths: tf.Tensor, params: ModelParams,
                   decoder: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Greedy decoding alone, without text (what TensorFlow Lite can run): images and widths as
    recognize_pixels takes them, decoder "attention" or "ctc" -> ids int32 [N, S] (EOS after the text)
    and each step's probability float32 [N, S]."""
    encoded, columns, mask, _ = encode(images, widths, params, training=False)
    if decoder == "ctc":
        ids, step_probabilities, _ = ctc.greedy_decode(ctc.ctc_logits(encoded, params.char_table.num_classes),
                                                       columns, params.decoder_steps)
        return ids, step_probabilities
    free = attention_decode(encoded, mask, params.char_table.num_classes, params.decoder_steps,
                            params.attn_num_hidden, params.attn_num_layers, params.target_embedding_size,
                            params.use_gru)
    return free.ids, tf.reduce_max(tf.nn.softmax(free.logits), axis=2)


def _ctc_answers(logits: tf.Tensor, columns: tf.Tensor, params: ModelParams,
                 decoding: Decoding) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The CTC head's candidates: ids int32 [N, M, S] and step probabilities float32 [N, M, S] as
    _candidates takes them, and the best path's columns per character float32 [N, S, T].

    By best path at beam width 1, each character with its columns' highest probability. By CTC beam search
    otherwise: CTC sums over alignments, so a text's characters have no probabilities of their own; each
    gets the text's probability spread evenly over its characters and the end (their product is the text's).
    """
    steps = params.decoder_steps
    ids, step_probabilities, attention = ctc.greedy_decode(logits, columns, steps)
    if decoding.beam_width == 1:
        return ids[:, None, :], step_probabilities[:, None, :], attention
    ids, log_probabilities = ctc.beam_decode(logits, columns, steps, decoding.beam_width, decoding.n_best)
    through_eos = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, EOS_ID), tf.int32), axis=2, exclusive=True), 0)
    lengths = tf.reduce_sum(tf.cast(through_eos, tf.float32), axis=2)  # [N, M]: characters and the end
    spread = tf.exp(log_probabilities / tf.maximum(lengths, 1.0))
    return ids, tf.where(through_eos, spread[:, :, None], tf.ones_like(spread)[:, :, None]), attention


def _rescored(ids: tf.Tensor, step_probabilities: tf.Tensor, logits: tf.Tensor,
              columns: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The attention beam's hypotheses (ids int32 [N, K, S], step probabilities float32 [N, K, S]) reordered by
    the joint score (JOINT_CTC_WEIGHT), best first; logits: the CTC head's float32 [N, T, C]."""
    after_eos = tf.cumsum(tf.cast(tf.equal(ids, EOS_ID), tf.int32), axis=2, exclusive=True) > 0
    log_attention = tf.reduce_sum(tf.where(after_eos, tf.zeros_like(step_probabilities),
                                           tf.math.log(tf.maximum(step_probabilities, 1e-30))), axis=2)
    log_ctc = ctc.sequence_log_likelihood(logits, columns, ids)
    score = (1.0 - JOINT_CTC_WEIGHT) * log_attention + JOINT_CTC_WEIGHT * tf.maximum(log_ctc, -1e30)
    order = tf.argsort(score, axis=1, direction="DESCENDING", stable=True)
    return tf.gather(ids, order, batch_dims=1), tf.gather(step_probabilities, order, batch_dims=1)


def _greedy_answer(ids: tf.Tensor, logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """ids int32 [N, S] and logits float32 [N, S, C] of greedy decoding -> the ids and each step's chosen
    class's probability, as one candidate per image: int32 [N, 1, S], float32 [N, 1, S]."""
    return ids[:, None, :], tf.reduce_max(tf.nn.softmax(logits), axis=2)[:, None, :]
