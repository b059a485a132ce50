"""`aocr train`: the flags -> a TrainConfig and the shape given -> aocr.training.trainer.run_training."""

from __future__ import annotations

import argparse

from aocr.cli.flags import explicit_shape
from aocr.training.trainer import TrainConfig, run_training


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        dataset=args.dataset_path, model_dir=args.model_dir, batch_size=args.batch_size,
        num_epoch=args.num_epoch, max_steps=args.max_steps, steps_per_checkpoint=args.steps_per_checkpoint,
        optimizer=args.optimizer, learning_rate=args.initial_learning_rate,
        max_gradient_norm=None if args.no_gradient_clipping else args.max_gradient_norm,
        resume=not args.no_resume, seed=args.seed, gpu_id=args.gpu_id, precision=args.precision,
        augment=args.augment, validation=args.validation, validation_split=args.validation_split,
        patience=args.patience, max_minutes=args.max_minutes, init_from=args.init_from,
        synchronous=not args.use_async, step_timeout=args.step_timeout, max_image_pixels=args.max_image_pixels)


def run(args: argparse.Namespace) -> int:
    """`aocr train` (aocr.training.trainer.run_training): signals are watched from the start to the end."""
    return run_training(config_from_args(args), explicit_shape(args))
