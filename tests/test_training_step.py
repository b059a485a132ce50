"""In-process: a training step whose loss or gradient is not finite changes nothing, so one bad batch
cannot turn every weight into NaN (a 10-minute run on long multi-script lines ended that way)."""

import math

import numpy as np
import tensorflow as tf

from aocr.model.optimize import build_train_op, make_optimizer
from aocr.training.loop import IntervalStats

tf1 = tf.compat.v1


def test_a_non_finite_loss_changes_no_weight_and_the_next_finite_one_trains():
    graph = tf.Graph()
    with graph.as_default():
        weights = tf1.get_variable("weights", initializer=tf.constant([1.0, -2.0]))
        embedding = tf1.get_variable("embedding", initializer=tf.ones([4, 2]))
        factor = tf1.placeholder(tf.float32, [])
        rows = tf.nn.embedding_lookup(embedding, [1, 3])  # a sparse (IndexedSlices) gradient too
        loss = factor * tf.reduce_sum(tf.square(weights)) + tf.reduce_sum(rows) * factor
        step = tf1.train.get_or_create_global_step()
        ops = build_train_op(loss, make_optimizer("adam", 0.1), step, 5.0, [])
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            before = session.run(tf1.global_variables())
            norm, _ = session.run([ops.gradient_norm, ops.step_after], {factor: math.nan})
            after = session.run(tf1.global_variables())
            assert not math.isfinite(norm)
            for old, new in zip(before[:2], after[:2], strict=True):  # the weights
                np.testing.assert_array_equal(old, new)
            assert all(np.all(np.isfinite(value)) for value in after)  # the optimizer's moments too
            session.run(ops.step_after, {factor: 1.0})
            assert not np.array_equal(session.run(weights), before[0])
            assert np.all(np.isfinite(session.run(tf1.global_variables()[0])))


def test_skipped_steps_are_counted_apart_from_the_figures():
    stats = IntervalStats()
    stats.add(2.0, 1.0, 32, 0.5)
    stats.add(math.nan, math.nan, 32, math.nan)
    stats.add(4.0, 3.0, 32, 0.7)
    assert (stats.steps, stats.skipped, stats.images) == (2, 1, 96)
    assert stats.figures()["loss"] == 3.0 and stats.figures()["perplexity"] == math.exp(2.0)
