"""The model's own pieces, checked against arithmetic rather than against training runs."""

import numpy as np
import tensorflow as tf

from aocr.model.block_lstm import block_lstm, lstm_variables
from aocr.model.encoder import bidirectional_lstm

tf1 = tf.compat.v1


def test_encoder_lstm_gradient_matches_finite_differences():
    """TensorFlow's registered BlockLSTMV2 gradient runs the V1 kernel, which reads the gates in V1's
    order and so swaps the forget and cell gates (its error here is as large as the gradient itself);
    the encoder's must agree with the loss it differentiates."""
    steps, batch, depth, units = 6, 3, 4, 5
    rng = np.random.default_rng(1)
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf1.placeholder(tf.float32, [steps, batch, depth])
        with tf1.variable_scope("lstm"):
            hidden = block_lstm(inputs, *lstm_variables(depth, units))
        kernel, bias = tf1.trainable_variables()
        target = tf.constant(rng.normal(size=(steps, batch, units)), tf.float32)
        loss = tf.reduce_sum(hidden * target)
        gradients = tf.gradients(loss, [inputs, kernel, bias])
        values = {inputs: rng.normal(size=(steps, batch, depth)).astype(np.float32)}
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            for variable in (kernel, bias):
                values[variable] = (0.5 * rng.normal(size=variable.shape)).astype(np.float32)
                variable.load(values[variable], session)
            analytic = session.run(gradients, {inputs: values[inputs]})

            def loss_at(tensor, index, shift):
                changed = values[tensor].copy()
                changed[index] += shift
                if tensor is inputs:
                    return session.run(loss, {inputs: changed})
                tensor.load(changed, session)
                try:
                    return session.run(loss, {inputs: values[inputs]})
                finally:
                    tensor.load(values[tensor], session)

            for tensor, gradient in zip((inputs, kernel, bias), analytic, strict=True):
                for _ in range(25):
                    index = tuple(int(rng.integers(0, size)) for size in gradient.shape)
                    numeric = (loss_at(tensor, index, 1e-2) - loss_at(tensor, index, -1e-2)) / 2e-2
                    assert abs(numeric - gradient[index]) < 2e-3, (tensor.name, index, numeric, gradient[index])


def test_encoder_lstm_gradient_matches_tensorflows_v2_gradient_kernel():
    """TensorFlow's BlockLSTMGradV2 kernel, called directly, is right (only rnn_grad.py's registration
    calls the V1 kernel instead): ours must give the same gradients, forget and cell gates included."""
    steps, batch, depth, units = 7, 3, 5, 4
    rng = np.random.default_rng(2)
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.constant(rng.normal(size=(steps, batch, depth)), tf.float32)
        with tf1.variable_scope("lstm"):
            hidden = block_lstm(inputs, *lstm_variables(depth, units))
        kernel, bias = tf1.trainable_variables()
        target = tf.constant(rng.normal(size=(steps, batch, units)), tf.float32)
        ours = tf.gradients(tf.reduce_sum(hidden * target), [inputs, kernel, bias])
        op = hidden.op
        i, cs, f, o, ci, co, h = op.outputs
        names = ("seq_len_max", "x", "cs_prev", "h_prev", "w", "wci", "wcf", "wco", "b")
        direct = tf.raw_ops.BlockLSTMGradV2(**dict(zip(names, op.inputs, strict=True)), i=i, cs=cs, f=f, o=o, ci=ci,
                                            co=co, h=h, cs_grad=tf.zeros_like(cs), h_grad=target, use_peephole=False)
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            bias.load((0.5 * rng.normal(size=bias.shape)).astype(np.float32), session)
            ours, direct = session.run([ours, [direct.x_grad, direct.w_grad, direct.b_grad]])
    for name, a, b in zip(("inputs", "kernel", "bias"), ours, direct, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=name)


def test_inference_encoder_computes_what_the_training_kernel_does():
    """Inference runs the encoder in a loop of plain ops (also what TensorFlow Lite converts), training on
    BlockLSTMV2: from the same checkpoint both must give the same columns, for images of different
    widths in one batch, over a number of columns that is not a multiple of the loop's chunk."""
    rng = np.random.default_rng(2)
    graph = tf.Graph()
    with graph.as_default():
        features = tf.constant(rng.normal(size=(3, 7, 4)), tf.float32)
        lengths = tf.constant([7, 2, 5])
        fused = bidirectional_lstm(features, lengths, 5, training=True)
        with tf1.variable_scope(tf1.get_variable_scope(), reuse=True):
            plain = bidirectional_lstm(features, lengths, 5, training=False)
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            for variable in tf1.trainable_variables():
                variable.load((0.5 * rng.normal(size=variable.shape)).astype(np.float32), session)
            fused_values, plain_values = session.run([fused, plain])
    assert fused_values.shape == plain_values.shape == (3, 7, 10)
    for image, length in enumerate([7, 2, 5]):  # beyond its length an image's columns are padding
        assert np.abs(fused_values[image, :length] - plain_values[image, :length]).max() < 1e-5
    plain_ops = {op.type for op in plain.op.graph.get_operations() if op.name.startswith("encoder_1")}
    assert "BlockLSTMV2" not in plain_ops and "BlockLSTMV2" in {op.type for op in fused.op.graph.get_operations()}
