"""The graph's size and training speed against the longest label: --max-prediction 8, 32 and 64, for
this working tree and an earlier revision (default 0ccba4e, the last one whose decoder was unrolled
once per character in the graph). Prints a table and writes benchmarks/out/decoder_length.json.

    python benchmarks/decoder_length.py [--baseline REV] [--steps 30]

Graph size: the bytes of the GraphDef of the training graph (model, loss, gradients and Adam) and of
the inference graph (encoded images to text, what the exports hold), built in a child process that
imports the revision's own package. Training speed: the median images/s of a fresh `aocr train` run
at the default batch size on rendered strings of up to --max-prediction characters (--max-width 1000
for 32 and 64), after its first logged interval.

Stopping at EOS: prediction ms/image of short words (the rendered test set, 3-8 characters) by a
model trained at --max-prediction 8 (--model-dir, default the 10-minute model of
benchmarks/learning.py), and by the same weights with max_prediction 32 in a copy of its params.json
(no weight depends on it): an unrolled decoder runs all 33 steps, one that stops at EOS about 9.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT, machine, print_table, rendered_set, write_json  # noqa: E402
from revision_speed import ROOT, checkout, child_env, median_rate, prediction_ms  # noqa: E402

from aocr.core import params as model_params  # noqa: E402

# (max_prediction, label lengths, max_width) of each measured shape
SHAPES = ((8, (3, 8), 200), (32, (16, 32), 1000), (64, (40, 64), 1000))
GRAPH_PROGRAM = """
import json, sys
import tensorflow as tf
from aocr.model.model import build_model
try:
    from aocr.core.params import ModelParams
    from aocr.inference.graph import recognize_bytes
except ImportError:  # a revision from before aocr.core and aocr.inference
    from aocr.model.model import recognize_bytes
    from aocr.params import ModelParams
tf1 = tf.compat.v1
params = ModelParams(max_width=int(sys.argv[2]), max_height=32, max_prediction=int(sys.argv[1]))
sizes = {}
with tf.Graph().as_default() as graph:
    images = tf1.placeholder(tf.float32, [None, 32, None, 1])
    widths = tf1.placeholder(tf.int32, [None])
    labels = tf1.placeholder(tf.int32, [None, params.max_prediction + 2])
    step = tf1.train.get_or_create_global_step()
    outputs = build_model(images, widths, params, "train", labels, global_step=step)
    tf1.train.AdamOptimizer(1e-3).minimize(outputs.loss, global_step=step)
    sizes["training_graph_bytes"] = graph.as_graph_def().ByteSize()
with tf.Graph().as_default() as graph:
    recognize_bytes(tf1.placeholder(tf.string, [None]), params)
    sizes["inference_graph_bytes"] = graph.as_graph_def().ByteSize()
print(json.dumps(sizes))
"""


def long_label_set(max_prediction: int, lengths: tuple[int, int]) -> Path:
    """The TFRecords of 600 rendered strings of lengths[0] to lengths[1] characters, made once."""
    from aocr.data.synthetic import make_dataset

    directory = OUT / f"decoder-length-{max_prediction}"
    tfrecords = directory / "data.tfrecords"
    if not tfrecords.exists():
        make_dataset(directory, 600, seed=max_prediction, min_length=lengths[0], max_length=lengths[1])
        subprocess.run([sys.executable, "-m", "aocr", "dataset", str(directory / "annotations.txt"), str(tfrecords),
                        "--log-path", ""], check=True)
    return tfrecords


def graph_bytes(source: Path, max_prediction: int, max_width: int) -> dict[str, int]:
    result = subprocess.run([sys.executable, "-c", GRAPH_PROGRAM, str(max_prediction), str(max_width)],
                            capture_output=True, text=True, env=child_env(source), timeout=900, cwd=OUT)
    if result.returncode != 0:
        raise SystemExit(f"building the graphs from {source} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def training_rate(source: Path, tfrecords: Path, work: Path, steps: int, shape: tuple) -> float:
    max_prediction, _, max_width = shape
    flags = ["--max-prediction", str(max_prediction), "--max-width", str(max_width), "--max-height", "32",
             "--max-steps", str(steps), "--steps-per-checkpoint", str(steps // 3), "--validation-split", "0"]
    return median_rate(source, tfrecords, work, flags)


def with_max_prediction(model_dir: Path, max_prediction: int, work: Path) -> Path:
    """A copy of model_dir's params.json and best checkpoint whose params say `max_prediction`."""
    copy = work / f"model-{max_prediction}"
    shutil.copytree(model_dir, copy, ignore=shutil.ignore_patterns("events.*"), dirs_exist_ok=True)
    params = dataclasses.replace(model_params.require(str(copy)), max_prediction=max_prediction)
    (copy / model_params.PARAMS_FILE).write_text(params.to_json(), encoding="utf-8")
    return copy


def early_stop_figures(sources: dict[str, Path], model_dir: Path, work: Path) -> dict[str, float]:
    """ms/image of each source at max_prediction 8 and 32 (best of 3 rounds of 300 images)."""
    test_annotations, _ = rendered_set("rendered-test-500", 500, seed=12)
    images = sorted(test_annotations.parent.rglob("*.png"))[:300]
    figures = {}
    for max_prediction in (8, 32):
        copy = with_max_prediction(model_dir, max_prediction, work)
        for name, source in sources.items():
            figures[f"{name}, --max-prediction {max_prediction}"] = prediction_ms(source, copy, images, 3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="0ccba4e", help="the git revision to compare with")
    parser.add_argument("--steps", type=int, default=30, help="training steps per run")
    parser.add_argument("--model-dir", type=Path, default=OUT / "learning" / "rendered-b65",
                        help="a model trained at --max-prediction 8 on rendered strings (for the EOS figures)")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        sources = {args.baseline: checkout(args.baseline, work), "current": ROOT}
        for shape in SHAPES:
            tfrecords = long_label_set(shape[0], shape[1])
            for name, source in sources.items():
                figures = graph_bytes(source, shape[0], shape[2])
                figures["training_images_per_second"] = training_rate(source, tfrecords, work, args.steps, shape)
                results[f"{name}, --max-prediction {shape[0]}"] = figures
                print(f"{name} at --max-prediction {shape[0]}: {figures}", flush=True)
        predict = early_stop_figures(sources, args.model_dir, work) if args.model_dir.is_dir() else {}
    rows = [("revision, --max-prediction", "training / inference GraphDef", "training images/s")]
    rows += [(key, f"{value['training_graph_bytes'] / 1e6:.2f} MB / {value['inference_graph_bytes'] / 1e6:.2f} MB",
              f"{value['training_images_per_second']:.1f}") for key, value in results.items()]
    rows += [(key, "prediction of 3-8 characters", f"{value:.2f} ms/image") for key, value in predict.items()]
    print_table(rows)
    summary = {"machine": machine(), "results": results, "prediction_ms_per_image": predict}
    print(f"written to {write_json('decoder_length.json', summary)}")


if __name__ == "__main__":
    main()
