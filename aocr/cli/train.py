"""`aocr train`: the flags -> a TrainConfig and the shape given -> aocr.training.trainer.run_training."""

from __future__ import annotations

import argparse

from aocr.cli.flags import explicit_shape
from aocr.core import options
from aocr.training.trainer import TrainConfig, run_training


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from the training flags, by the fields their rows in aocr.core.options name."""
    shared = (options.MODEL_DIR, options.GPU_ID, options.MAX_IMAGE_PIXELS, options.TRAIN_BATCH_SIZE)
    return TrainConfig(dataset=args.dataset_path, **options.values_of(args, (*shared, *options.TRAINING)))


def run(args: argparse.Namespace) -> int:
    """`aocr train` (aocr.training.trainer.run_training): signals are watched from the start to the end."""
    return run_training(config_from_args(args), explicit_shape(args))
