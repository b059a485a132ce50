"""Training speed, prediction speed and accuracy-versus-time of aocr, beside the bare-CNN compute limit
measured in the same run. Prints a table and writes benchmarks/out/model_benchmark.json.

    python benchmarks/model_benchmark.py                 # everything, about 20 minutes on 2 cores
    python benchmarks/model_benchmark.py --minutes 2     # a shorter learning curve
    python benchmarks/model_benchmark.py --predict-only  # prediction speed of the model trained above

Setup as the issue's figures for the original aocr: rendered 3-8 character strings,
--max-width 200 --max-height 48, batch 32 (and the default 65 for training speed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tensorflow as tf  # noqa: E402
from cnn_limit import images_per_second, inference_batch_widths, pipeline_batch_widths  # noqa: E402
from common import OUT, SHAPE, captcha_set, machine, print_table, rendered_set, timed_stream, write_json  # noqa: E402
from learning import LearningRun, learning_curve  # noqa: E402

from aocr.core import defaults  # noqa: E402
from aocr.core.params import ModelParams  # noqa: E402
from aocr.core.precision import training_compute_dtype  # noqa: E402
from aocr.inference.recognizer import Recognizer  # noqa: E402
from aocr.training.trainer import TrainConfig, train  # noqa: E402

# The measurements of the original aocr on a 2-core AVX2 machine, as ratios to the
# bare-CNN limit measured on that same machine: its training ran at 1/1.7 of the limit and
# its prediction at 1/2.4 of the inference limit.
ORIGINAL_TRAIN_SHARE_OF_LIMIT = 1 / 1.7
ORIGINAL_PREDICT_SHARE_OF_LIMIT = 1 / 2.4
# The learning run whose model the prediction figures load: rendered strings at the default batch size.
DEFAULT_RUN = f"rendered-b{defaults.TRAIN_BATCH_SIZE}"
LEARNING_MODEL_DIR = OUT / "learning" / DEFAULT_RUN


def training_speed(tfrecords: Path, params: ModelParams, batch_size: int, steps: int = 100) -> float:
    """Images/s of `aocr train` from a fresh model, between its first and last checkpoint."""
    marks: list[tuple[int, float]] = []
    model_dir = OUT / f"speed-b{batch_size}"
    config = TrainConfig(dataset=str(tfrecords), model_dir=str(model_dir), batch_size=batch_size,
                         max_steps=steps, steps_per_checkpoint=steps // 4, resume=False, seed=0, validation_split=0)
    train(config, params, on_checkpoint=lambda step, seconds, _: marks.append((step, seconds)))
    (first_step, first_time), (last_step, last_time) = marks[0], marks[-1]
    return (last_step - first_step) * batch_size / (last_time - first_time)


def learning_run(name: str, params: ModelParams) -> LearningRun:
    """A learning run named SET-bBATCH[-noaug|-light][-ctc]: SET is rendered (6000 rendered strings), captcha
    (6000 captcha-style images) or small (500 rendered strings), all tested on held-out images of their kind;
    -noaug and -light train with --augment none or light instead of the default; -ctc trains the CTC head alone
    (--decoder ctc, the default for a new model), else both heads."""
    match = re.fullmatch(r"(rendered|captcha|small)-b(\d+)(?:-(noaug|light))?(-ctc)?", name)
    if not match:
        raise SystemExit(f"unknown learning run {name!r}: expected SET-bBATCH[-noaug|-light][-ctc], SET "
                         "rendered|captcha|small")
    kind, batch = match.group(1), int(match.group(2))
    augment = {"noaug": "none", "light": "light", None: defaults.AUGMENT}[match.group(3)]
    params = dataclasses.replace(params, decoder="ctc" if match.group(4) else "attention")
    if kind == "captcha":
        _, train_records = captcha_set("captcha-train-6000", 6000, seed=21)
        _, test_records = captcha_set("captcha-test-300", 300, seed=22)
        return LearningRun(name, train_records, test_records, ModelParams(160, 60, 6, decoder=params.decoder),
                           batch, augment)
    _, train_records = (rendered_set("rendered-train-6000", 6000, seed=11) if kind == "rendered"
                        else rendered_set("rendered-train-500", 500, seed=13))
    _, test_records = rendered_set("rendered-test-500", 500, seed=12)
    return LearningRun(name, train_records, test_records, params, batch, augment)


def prediction_speed(model_dir: Path, params: ModelParams, images: list[Path], rounds: int = 3) -> dict:
    """Per image over a stream through the Recognizer and through the `aocr predict` command,
    the latency of one image alone, and the original aocr's bare-CNN inference limit on the same images
    (the original's own prediction speed is a ratio to it).

    The stream and the limit alternate for `rounds` rounds and each keeps its best, so a
    machine that speeds up or slows down during the benchmark moves both alike.
    """
    data = [p.read_bytes() for p in images]
    limit_widths = inference_batch_widths(data, params, 64)
    streams, limits = [], []
    recognizer = Recognizer.load(str(model_dir), params)
    try:
        recognizer.recognize(data[:64], 64)  # warm-up
        for _ in range(rounds):
            limits.append(images_per_second(limit_widths, 64, training=False, network="original"))
            streams.append(timed_stream(recognizer, data)[0] / 1000)
        latencies = []
        for image in data[:30]:
            start = time.perf_counter()
            recognizer.recognize([image], 1)
            latencies.append(time.perf_counter() - start)
    finally:
        recognizer.close()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "aocr", "predict", "--model-dir", str(model_dir), "--log-path", ""],
                   input="\n".join(map(str, images)) + "\n", text=True, check=True, capture_output=True)
    command = time.perf_counter() - start
    return {"stream_ms_per_image": 1000 * min(streams), "limit_ms_per_image": 1000 / max(limits),
            "stream_ms_per_image_rounds": [1000 * s for s in streams],
            "limit_ms_per_image_rounds": [1000 / rate for rate in limits],
            "single_image_latency_ms": 1000 * statistics.median(latencies),
            "command_seconds_total": command, "command_ms_per_image": 1000 * command / len(images),
            "images": len(images)}


def training_limits(results: dict, params: ModelParams, train_records: Path) -> tuple[float, float, tf.DType]:
    """The bare CNN's training images/s at batch 32 on the pipeline's batch widths: the default network in
    float32 and in what `aocr train` computes in here, and the original aocr's network in float32 (the
    original's own figures are ratios to that). Stored in results["cnn_limit"]."""
    train_widths = pipeline_batch_widths(str(train_records), params, 32, 30)
    limit_train = images_per_second(train_widths, 32, training=True, network=params.cnn)
    # What `aocr train` computes its convolutions in on this machine (bfloat16 where the CPU has AMX or
    # AVX-512 BF16): the limit of the same arithmetic, beside the float32 one.
    train_dtype = training_compute_dtype(defaults.PRECISION, None)
    limit_train_same = (images_per_second(train_widths, 32, training=True, compute_dtype=train_dtype,
                                          network=params.cnn) if train_dtype != tf.float32 else limit_train)
    limit_original = images_per_second(train_widths, 32, training=True, network="original")
    results["cnn_limit"] = {"train_images_per_second_b32": limit_train,
                            f"train_images_per_second_b32_{train_dtype.name}": limit_train_same,
                            "original_train_images_per_second_b32": limit_original,
                            "mean_train_batch_width": statistics.mean(train_widths),
                            "max_width_pixels": params.image_width}
    print(f"bare CNN: train {limit_train:.1f} images/s ({train_dtype.name}: {limit_train_same:.1f}); "
          f"the original's {limit_original:.1f}", flush=True)
    return limit_train, limit_train_same, train_dtype


def print_learning(learning: dict) -> None:
    rows = [("learning run", "word / character accuracy", "when")]
    for name, run in learning.items():
        rows += [(name, f"{100 * c['word_accuracy']:.1f}% / {100 * c['character_accuracy']:.1f}%",
                  f"after {c['minutes']:g} min (step {c['step']})") for c in run["curve"]]
        rows.append((name, f"aligned at step {run['aligned_at_step']}", "first checkpoint with perplexity < 2"))
    print()
    print_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", default="2,5,10", help="training budgets for the accuracy curve")
    parser.add_argument("--train-count", type=int, default=6000)
    parser.add_argument("--test-count", type=int, default=500)
    parser.add_argument("--learning-only", action="store_true", help="only the accuracy-versus-time curves")
    parser.add_argument("--learning-runs", default=DEFAULT_RUN,
                        help="comma-separated learning runs SET-bBATCH[-noaug|-light][-ctc], SET rendered, captcha or "
                             "small, e.g. rendered-b65,captcha-b32-ctc,small-b32-noaug (default: %(default)s)")
    parser.add_argument("--speed-only", action="store_true",
                        help="only the training speed at batch 32, beside the original's on this CPU")
    parser.add_argument("--predict-only", action="store_true",
                        help="only prediction speed, with the model a previous full run trained")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    minutes = [float(m) for m in args.minutes.split(",")]
    params = ModelParams(**SHAPE)
    results: dict = {"machine": machine(), "setup": {**SHAPE, "train_images": args.train_count,
                                                     "test_images": args.test_count}}
    print(f"machine: {results['machine']}", flush=True)
    _, train_records = rendered_set(f"rendered-train-{args.train_count}", args.train_count, seed=11)
    test_annotations, test_records = rendered_set(f"rendered-test-{args.test_count}", args.test_count, seed=12)
    test_images = [Path(line.split(" ", 1)[0]) for line in test_annotations.read_text().splitlines()]
    if args.predict_only:
        results["predict"] = prediction_speed(LEARNING_MODEL_DIR, params, test_images[:300])
        print(json.dumps(results["predict"], indent=2))
        return
    runs = {name: learning_run(name, params) for name in args.learning_runs.split(",")}
    if args.learning_only:
        results["learning"] = {name: learning_curve(run, minutes) for name, run in runs.items()}
        print_learning(results["learning"])
        print(f"wrote {write_json('learning_curve.json', results)}")
        return

    limit_train, limit_train_same, train_dtype = training_limits(results, params, train_records)
    results["train_images_per_second"] = {
        f"batch_{b}": training_speed(train_records, params, b) for b in ((32,) if args.speed_only else (32, 65))}
    if args.speed_only:
        train32 = results["train_images_per_second"]["batch_32"]
        original = results["cnn_limit"]["original_train_images_per_second_b32"] * ORIGINAL_TRAIN_SHARE_OF_LIMIT
        print_table([("figure", "measured", ""), ("train images/s, batch 32", f"{train32:.1f}",
                      f"~{train32 / original:.2f}x the original's ~{original:.1f} on this CPU")])
        print(f"\nwrote {write_json('model_benchmark_speed.json', results)}")
        return
    results["learning"] = {name: learning_curve(run, minutes) for name, run in runs.items()}
    results["predict"] = prediction_speed(LEARNING_MODEL_DIR, params, test_images[:300])
    results["cnn_limit"]["original_infer_images_per_second_b64"] = 1000 / results["predict"]["limit_ms_per_image"]

    train32 = results["train_images_per_second"]["batch_32"]
    train_vs_original = train32 / (results["cnn_limit"]["original_train_images_per_second_b32"]
                                   * ORIGINAL_TRAIN_SHARE_OF_LIMIT)
    predict = results["predict"]
    limit_ms = predict["limit_ms_per_image"]
    rows = [("figure", "measured", "beside the bare-CNN limits (same run)"),
            ("train images/s, batch 32", f"{train32:.1f}",
             f"{train32 / limit_train:.0%} of the float32 limit {limit_train:.1f}; ~{train_vs_original:.2f}x the "
             f"original (target 4x); {train32 / limit_train_same:.0%} of the {train_dtype.name} limit "
             f"{limit_train_same:.1f}"),
            ("train images/s, batch 65", f"{results['train_images_per_second']['batch_65']:.1f}", ""),
            ("predict ms/image, stream", f"{predict['stream_ms_per_image']:.2f}",
             f"the original's CNN alone {limit_ms:.2f} ms; "
             f"~{(limit_ms / ORIGINAL_PREDICT_SHARE_OF_LIMIT) / predict['stream_ms_per_image']:.2f}x faster"
             " than the original (target 3x)"),
            ("aocr predict ms/image (300, with start-up)", f"{predict['command_ms_per_image']:.2f}", ""),
            ("single-image latency ms", f"{predict['single_image_latency_ms']:.1f}", "")]
    print()
    print_table(rows)
    print_learning(results["learning"])
    print(f"\nwrote {write_json('model_benchmark.json', results)}")


if __name__ == "__main__":
    main()
