"""The sliding CNN: a VGG-style stack that turns an image into a sequence of feature columns.

Two networks share the same pools (height 32 -> 1, width W -> W/4) and differ in their channels:
"original", the original aocr's, sized for GPUs, and "compact", sized for CPUs, which costs a
fraction of its multiply-adds per column. params.json records which one a model has.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from aocr.core import defaults

tf1 = tf.compat.v1


class ConvLayer(NamedTuple):
    channels: int  # output channels
    kernel: int  # square kernel size
    batch_norm: bool  # batch norm instead of a bias
    pool: tuple[int, int] | None  # max pool (height, width) after the layer, or None


def _stack(channels: tuple[int, ...]) -> tuple[ConvLayer, ...]:
    """The original's seven layers (kernels, batch norms and pools) with the given output channels."""
    shape = ((3, False, (2, 2)), (3, False, (2, 2)), (3, True, None), (3, False, (2, 1)),
             (3, True, None), (3, False, (2, 1)), (2, True, (2, 1)))
    return tuple(ConvLayer(width, *layer) for width, layer in zip(channels, shape, strict=True))


NETWORKS = {
    "original": _stack((64, 128, 256, 256, 512, 512, 512)),
    "compact": _stack((32, 64, 96, 96, 128, 128, 256)),
}
WIDTH_STRIDE = defaults.WIDTH_STRIDE
BN_DECAY = 0.9
BN_EPSILON = 1e-3


def _batch_norm(net: tf.Tensor, training: bool, updates: list[tf.Operation]) -> tf.Tensor:
    """Fused batch norm; in training it normalizes by batch statistics and appends the ops that
    move the running averages to `updates`, in inference it uses those averages."""
    channels = net.shape[-1]
    gamma = tf1.get_variable("gamma", [channels], initializer=tf1.ones_initializer())
    beta = tf1.get_variable("beta", [channels], initializer=tf1.zeros_initializer())
    moving_mean = tf1.get_variable("moving_mean", [channels], initializer=tf1.zeros_initializer(), trainable=False)
    moving_var = tf1.get_variable("moving_variance", [channels], initializer=tf1.ones_initializer(),
                                  trainable=False)
    if not training:
        out, _, _ = tf1.nn.fused_batch_norm(net, gamma, beta, moving_mean, moving_var,
                                            epsilon=BN_EPSILON, is_training=False)
        return out
    out, mean, var = tf1.nn.fused_batch_norm(net, gamma, beta, epsilon=BN_EPSILON, is_training=True)
    updates.append(tf1.assign_sub(moving_mean, (1 - BN_DECAY) * (moving_mean - mean)))
    updates.append(tf1.assign_sub(moving_var, (1 - BN_DECAY) * (moving_var - var)))
    return out


def _mask_beyond(net: tf.Tensor, widths: tf.Tensor) -> tf.Tensor:
    """Zero the columns of net [B, H, W', C] at or beyond each image's width (int32 [B], in W' units)."""
    mask = tf.sequence_mask(widths, tf.shape(net)[2], dtype=net.dtype)
    return net * mask[:, None, :, None]


def cnn_features(images: tf.Tensor, widths: tf.Tensor, training: bool, compute_dtype: tf.DType = tf.float32,
                 network: str = "compact") -> tuple[tf.Tensor, list[tf.Operation]]:
    """images: float32 [B, H, W, C], values 0-255, W a multiple of 4; widths: int32 [B], real widths.

    Returns (features float32 [B, W/4, F], batch-norm update ops, empty unless training), F the last
    layer's channels of NETWORKS[network]. Seven 3x3 convolutions (the last 2x2), batch norm on the
    3rd, 5th and 7th, and max pools 2x2, 2x2, 2x1, 2x1, 2x1 take height H to ceil(H / 32) (1 at the
    default 32) and width W to W/4; the rows left are max-pooled into one, so every height gives the
    same weights' shapes.

    Each layer's output is zeroed beyond the image's real width, so the padding looks
    exactly like the convolutions' own zero padding: an image gives the same features
    whatever the width of the batch it is padded into (alone, in a batch, or in a
    served request with other images).

    compute_dtype: the convolutions' arithmetic (bfloat16 on CPUs with AMX or AVX-512 BF16 in
    training); variables and the returned features stay float32.
    """
    updates: list[tf.Operation] = []
    scale = 1
    net = _mask_beyond(tf.cast((images - 128.0) / 128.0, compute_dtype), widths)
    with tf1.variable_scope("cnn"):
        for number, layer in enumerate(NETWORKS[network], start=1):
            with tf1.variable_scope(f"conv{number}"):
                weights = tf1.get_variable(
                    "weights", [layer.kernel, layer.kernel, net.shape[-1], layer.channels],
                    initializer=tf1.variance_scaling_initializer(scale=2.0))
                net = tf.nn.conv2d(net, tf.cast(weights, compute_dtype), strides=1, padding="SAME")
                if layer.batch_norm:
                    net = _batch_norm(net, training, updates)
                else:
                    bias = tf1.get_variable("bias", [layer.channels], initializer=tf1.zeros_initializer())
                    net = net + tf.cast(bias, compute_dtype)
                net = _mask_beyond(tf.nn.relu(net), widths // scale)
            if layer.pool is not None:
                net = tf.nn.max_pool2d(net, ksize=layer.pool, strides=layer.pool, padding="SAME")
                scale *= layer.pool[1]
    return tf.cast(tf.reduce_max(net, axis=1), tf.float32), updates


def multiply_adds_per_column(network: str, image_height: int = defaults.IMAGE_HEIGHT, channels: int = 1) -> int:
    """The convolutions' multiply-adds per input column of an image of the given height (forward pass)."""
    total, rows, columns_share, depth = 0, image_height, 1.0, channels
    for layer in NETWORKS[network]:
        total += int(rows * columns_share * layer.kernel * layer.kernel * depth * layer.channels)
        depth = layer.channels
        if layer.pool is not None:
            rows = -(-rows // layer.pool[0])
            columns_share /= layer.pool[1]
    return total
