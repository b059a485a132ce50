"""The tf.data input pipeline for training: records -> preprocessed, width-bucketed batches."""

from __future__ import annotations

import tensorflow as tf

from aocr.core.params import ModelParams
from aocr.data.augment import augment
from aocr.data.preprocess import preprocess_image
from aocr.data.records import LabelScan

# Bucket edges every 8 pixels (2 CNN columns): images of similar width share a batch,
# and each batch is padded only to its own widest image.
BUCKET_STEP = 8
SHUFFLE_BUFFER = 10000


def bucket_boundaries(params: ModelParams) -> list[int]:
    return list(range(BUCKET_STEP + 1, params.image_width + 1, BUCKET_STEP))


def training_dataset(scan: LabelScan, params: ModelParams, batch_size: int, num_epoch: int | None,
                     seed: int | None = None, num_shards: int = 1, shard_index: int = 0,
                     augment_level: str = "none", undistorted_first: int = 0) -> tf.data.Dataset:
    """Batches of {images float32 [B, H, W, C], widths int32 [B], label_ids int32 [B, max_prediction + 2]},
    H = params.image_height.

    W is the widest image of the batch; num_epoch None repeats without end. Records whose label the scan rejected are
    dropped; images that fail to decode are dropped too. With num_shards > 1 this
    worker reads only its share of the records. augment_level: "none", "light" or "strong"
    random distortions of each image (aocr.data.augment), from the image after the first
    `undistorted_first` this dataset yields.
    """
    files = tf.data.Dataset.from_tensor_slices((scan.files, tf.constant(scan.readable_counts, tf.int64)))
    records = files.flat_map(lambda path, count: tf.data.TFRecordDataset(path).take(count))
    labels = tf.data.Dataset.from_tensor_slices((scan.keep, scan.label_ids))
    dataset = tf.data.Dataset.zip((records, labels))
    dataset = dataset.filter(lambda record, label: label[0])
    if num_shards > 1:
        dataset = dataset.shard(num_shards, shard_index)
    dataset = dataset.shuffle(min(SHUFFLE_BUFFER, max(1, scan.usable)), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat(num_epoch).enumerate()

    def decode(index: tf.Tensor, element: tuple[tf.Tensor, tuple[tf.Tensor, tf.Tensor]]) -> dict[str, tf.Tensor]:
        record, label = element
        features = tf.io.parse_single_example(record, {"image": tf.io.FixedLenFeature([], tf.string)})
        image, width = preprocess_image(features["image"], params)
        if undistorted_first > 0:
            image, width = tf.cond(index < undistorted_first, lambda: (image, width),
                                   lambda: augment(image, width, augment_level, params.image_width))
        else:
            image, width = augment(image, width, augment_level, params.image_width)
        return {"images": image, "widths": width, "label_ids": label[1]}

    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)
    dataset = dataset.ignore_errors()
    boundaries = bucket_boundaries(params)
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda element: element["widths"],
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padded_shapes={"images": [params.image_height, None, params.channels], "widths": [], "label_ids": [None]},
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
