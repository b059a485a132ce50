"""The training graph: input pipeline, model, optimizer, savers; it knows nothing of sessions."""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from aocr.core.params import Decoding, ModelParams
from aocr.core.session import model_device
from aocr.data.pipeline import training_dataset
from aocr.data.records import LabelScan
from aocr.inference.recognizer import Recognizer
from aocr.model.model import ModelOutputs, Recognition, build_model
from aocr.model.optimize import TrainOps, build_train_op, make_optimizer
from aocr.training.strategy import Strategy

tf1 = tf.compat.v1
KEEP_CHECKPOINTS = 5
# The greedy readings validation compares, by the model's heads (ModelParams.decoder).
VALIDATED = {"attention": ("attention", "ctc"), "ctc": ("ctc",)}


@dataclass
class TrainingGraph:
    graph: tf.Graph
    model: ModelOutputs
    ops: TrainOps
    global_step: tf.Variable
    images_in_batch: tf.Tensor  # int32 scalar: images in the step's batch (the last one may be short)
    learning_rate: tf.Tensor  # float32 scalar, the rate of this step
    learning_rate_scale: tf.Tensor  # float32 scalar placeholder (default 1): the schedule's multiplier
    saver: tf1.train.Saver  # the rolling last KEEP_CHECKPOINTS (the best is linked apart: aocr.training.checkpoints)
    init: tf.Operation
    validation: dict[str, tuple[tf.Tensor, Recognition]] | None  # decoder -> inference graph on the training variables


def build_training_graph(scan: LabelScan, params: ModelParams, settings: dict, strategy: Strategy,
                         with_validation: bool) -> TrainingGraph:
    """Everything one training step runs, placed by `strategy` (one machine or a cluster).

    settings: batch_size, num_epoch, seed, optimizer, learning_rate (the effective one), max_gradient_norm,
    gpu_id and cnn_dtype, as TrainConfig holds them; augment and undistorted_first, as
    aocr.training.augment_plan plans them.
    """
    graph = tf.Graph()
    with graph.as_default():
        if settings["seed"] is not None:
            tf1.set_random_seed(settings["seed"])
        with strategy.placement():
            dataset = training_dataset(scan, params, settings["batch_size"], strategy.epochs(settings["num_epoch"]),
                                       settings["seed"], strategy.shards, strategy.shard, settings["augment"],
                                       settings["undistorted_first"])
            batch = tf1.data.make_one_shot_iterator(dataset).get_next()
            with model_device(settings["gpu_id"]):
                global_step = tf1.train.get_or_create_global_step()
                model = build_model(batch["images"], batch["widths"], params, "train", batch["label_ids"],
                                    cnn_dtype=settings["cnn_dtype"], global_step=global_step)
                rate_scale = tf1.placeholder_with_default(1.0, [], name="learning_rate_scale")
                learning_rate = settings["learning_rate"] * rate_scale
                optimizer = strategy.wrap_optimizer(make_optimizer(settings["optimizer"], learning_rate))
                ops = build_train_op(model.loss, optimizer, global_step, settings["max_gradient_norm"],
                                     model.batch_norm_updates)
            images_in_batch = tf.shape(batch["widths"])[0]
            validation = None
            if with_validation:
                # Validation reads with the training's arithmetic: in bfloat16 it takes a third of float32's time,
                # time the --max-minutes budget would otherwise lose at every checkpoint.
                with tf1.variable_scope(tf1.get_variable_scope(), reuse=True):
                    validation = {decoder: Recognizer.build(params, settings["gpu_id"], Decoding(
                        precision=settings["cnn_dtype"].name, decoder=decoder))
                        for decoder in VALIDATED[params.decoder]}
        strategy.build_ops()
        saver = tf1.train.Saver(max_to_keep=KEEP_CHECKPOINTS)
        init = tf1.global_variables_initializer()
    return TrainingGraph(graph, model, ops, global_step, images_in_batch, learning_rate, rate_scale, saver, init,
                         validation)
