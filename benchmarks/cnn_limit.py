"""The compute limit: the model's bare CNN on random data, each batch at its images' own width.

Training is forward and backward at batch 32; inference is forward at batch 64. The
widths are the padded batch widths the real pipelines produce for the given data, so
the limit is what the convolutions alone cost on that data.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from aocr.model.cnn import cnn_features

tf1 = tf.compat.v1


def images_per_second(batch_widths: list[int], batch_size: int, training: bool, channels: int = 1,
                      repeats: int = 1, compute_dtype: tf.DType = tf.float32, network: str = "compact") -> float:
    """Images/s of the bare CNN (aocr.model.cnn.NETWORKS[network]) over batches of the given padded widths
    (warm-up excluded)."""
    graph = tf.Graph()
    with graph.as_default():
        width = tf1.placeholder(tf.int32, [])
        images = tf.random.uniform(tf.stack([batch_size, 32, width, channels]), 0, 255)
        widths = tf.fill([batch_size], width)
        features, updates = cnn_features(images, widths, training=training, compute_dtype=compute_dtype,
                                          network=network)
        if training:
            loss = tf.reduce_mean(tf.square(features))
            optimizer = tf1.train.GradientDescentOptimizer(1e-6)
            with tf.control_dependencies(updates):
                step = optimizer.minimize(loss)
        else:
            step = tf.reduce_sum(features)
        init = tf1.global_variables_initializer()
    with tf1.Session(graph=graph) as session:
        session.run(init)
        for w in sorted(set(batch_widths)):  # warm-up: one run per distinct shape
            session.run(step, {width: w})
        start = time.perf_counter()
        for _ in range(repeats):
            for w in batch_widths:
                session.run(step, {width: w})
        seconds = time.perf_counter() - start
    return repeats * len(batch_widths) * batch_size / seconds


def pipeline_batch_widths(tfrecords: str, params, batch_size: int, batches: int) -> list[int]:
    """Padded widths of the first `batches` batches the training pipeline yields."""
    from aocr.data.pipeline import training_dataset
    from aocr.data.records import scan_labels

    scan = scan_labels([tfrecords], params)
    graph = tf.Graph()
    with graph.as_default():
        element = tf1.data.make_one_shot_iterator(
            training_dataset(scan, params, batch_size, num_epoch=100, seed=0)).get_next()
        with tf1.Session() as session:
            out = []
            while len(out) < batches:
                batch = session.run(element)
                if len(batch["widths"]) == batch_size:
                    out.append(int(batch["images"].shape[2]))
    return out


def inference_batch_widths(images: list[bytes], params, batch_size: int) -> list[int]:
    """Padded widths of the batches `aocr predict` forms from these images."""
    from aocr.core.images import scaled_width
    from aocr.inference.recognizer import width_batches

    out = []
    for batch in width_batches(images, batch_size):
        widest = max(scaled_width(images[i]) for i in batch)
        out.append(int(min(params.image_width, max(4, 4 * np.round(widest / 4)))))
    return out
