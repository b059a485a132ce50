"""BlockLSTMV2's backward pass three ways, at the encoder's size (T=40, B=32, 512 -> 256 by default):

  ours      aocr.model.block_lstm's registered gradient (the recurrence in a while loop, the
            weight and input gradients as one matrix product each over all steps);
  v2        tf.raw_ops.BlockLSTMGradV2 called directly on the forward op's outputs;
  tf        whatever TensorFlow registers for BlockLSTMV2 (rnn_grad.py: the V1 kernel BlockLSTMGrad).

Prints, and writes to benchmarks/out/blocklstm_gradient.json, each variant's forward+backward time
(best of --repeats runs, the variants interleaved so that load on the machine hits them alike) and the
largest absolute difference of each gradient from ours and from central finite differences.

    python benchmarks/blocklstm_gradient.py [--steps 40 --batch 32 --depth 512 --units 256 --repeats 15]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tensorflow as tf  # noqa: E402
from common import OUT, machine  # noqa: E402

from aocr.model.block_lstm import GRADIENT_NAME  # noqa: E402  (importing it registers our gradient)

tf1 = tf.compat.v1
NAMES = ("dx", "dw", "db")


def lstm_v2(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, units: int) -> tf.Operation:
    """The forward op as aocr builds it: no peepholes, no cell clip, zero initial state."""
    zeros = tf.zeros(tf.stack([tf.shape(x)[1], units]))
    no_peephole = tf.zeros([units])
    out = tf.raw_ops.BlockLSTMV2(seq_len_max=tf.cast(tf.shape(x)[0], tf.int64), x=x, cs_prev=zeros, h_prev=zeros,
                                 w=w, wci=no_peephole, wcf=no_peephole, wco=no_peephole, b=b,
                                 cell_clip=0.0, use_peephole=False)
    return out.h.op


def build(steps: int, batch: int, depth: int, units: int, seed: int):
    """Inputs, weights, a target for loss = sum(h * target), and each variant's [dx, dw, db]."""
    rng = np.random.default_rng(seed)
    x = tf1.placeholder(tf.float32, [steps, batch, depth])
    w = tf.constant(0.1 * rng.normal(size=(depth + units, 4 * units)), tf.float32)
    b = tf.constant(0.1 * rng.normal(size=(4 * units,)), tf.float32)
    target = tf.constant(rng.normal(size=(steps, batch, units)), tf.float32)
    losses, grads = {}, {}
    graph = tf1.get_default_graph()
    with graph.gradient_override_map({"BlockLSTMV2": GRADIENT_NAME}):
        op = lstm_v2(x, w, b, units)
    losses["ours"] = tf.reduce_sum(op.outputs[6] * target)
    grads["ours"] = tf.gradients(losses["ours"], [x, w, b])

    op = lstm_v2(x, w, b, units)
    losses["tf"] = tf.reduce_sum(op.outputs[6] * target)
    grads["tf"] = tf.gradients(losses["tf"], [x, w, b])

    op = lstm_v2(x, w, b, units)
    i, cs, f, o, ci, co, h = op.outputs
    inputs = dict(zip(("seq_len_max", "x", "cs_prev", "h_prev", "w", "wci", "wcf", "wco", "b"), op.inputs, strict=True))
    v2 = tf.raw_ops.BlockLSTMGradV2(**inputs, i=i, cs=cs, f=f, o=o, ci=ci, co=co, h=h,
                                    cs_grad=tf.zeros_like(cs), h_grad=target, use_peephole=False)
    losses["v2"] = tf.reduce_sum(h * target)
    grads["v2"] = [v2.x_grad, v2.w_grad, v2.b_grad]
    feed = {x: rng.normal(size=(steps, batch, depth)).astype(np.float32)}
    return x, w, b, feed, losses, grads


def finite_differences(session, loss, x, b, feed, count: int, seed: int) -> dict[str, list]:
    """(index, numeric derivative) for `count` random entries of x and b; w is a constant, so its entries are
    checked through b's (same gate columns). Float64 is not available to the kernel: the step is 1e-2."""
    rng = np.random.default_rng(seed)
    points = {}
    x_value = feed[x]
    for name, shape in (("dx", x_value.shape), ("db", tuple(b.shape))):
        rows = []
        for _ in range(count):
            index = tuple(int(rng.integers(0, s)) for s in shape)
            if name == "dx":
                plus, minus = x_value.copy(), x_value.copy()
                plus[index] += 1e-2
                minus[index] -= 1e-2
                numeric = (session.run(loss, {x: plus}) - session.run(loss, {x: minus})) / 2e-2
            else:
                delta = np.zeros(shape, np.float32)
                delta[index] = 1e-2
                numeric = (session.run(loss, {x: x_value, b: session.run(b) + delta})
                           - session.run(loss, {x: x_value, b: session.run(b) - delta})) / 2e-2
            rows.append((index, float(numeric)))
        points[name] = rows
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--depth", type=int, default=512)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: TensorFlow's choice)")
    args = parser.parse_args()

    graph = tf.Graph()
    with graph.as_default():
        x, w, b, feed, losses, grads = build(args.steps, args.batch, args.depth, args.units, seed=0)
        config = tf1.ConfigProto(intra_op_parallelism_threads=args.threads,
                                 inter_op_parallelism_threads=args.threads)
        with tf1.Session(config=config) as session:
            values = {name: session.run(g, feed) for name, g in grads.items()}
            times = {name: [] for name in grads}
            for name in grads:  # warm-up
                session.run(grads[name], feed)
            for _ in range(args.repeats):
                for name in grads:
                    start = time.perf_counter()
                    session.run(grads[name], feed)
                    times[name].append(time.perf_counter() - start)
            numeric = finite_differences(session, losses["ours"], x, b, feed, 10, seed=1)

    def largest(a: list[np.ndarray], b: list[np.ndarray]) -> dict[str, float]:
        return {n: float(np.max(np.abs(p - q))) for n, p, q in zip(NAMES, a, b, strict=True)}

    def versus_numeric(gradients: list[np.ndarray]) -> dict[str, float]:
        table = dict(zip(NAMES, gradients, strict=True))
        return {n: float(max(abs(table[n][index] - value) for index, value in rows)) for n, rows in numeric.items()}

    scale = {n: float(np.max(np.abs(g))) for n, g in zip(NAMES, values["ours"], strict=True)}
    result = {
        "shape": {"steps": args.steps, "batch": args.batch, "depth": args.depth, "units": args.units},
        "repeats": args.repeats, "threads": args.threads, "machine": machine(),
        "forward_backward_ms": {n: {"best": 1000 * min(t), "median": 1000 * float(np.median(t))}
                                for n, t in times.items()},
        "largest_gradient": scale,
        "max_abs_difference_from_ours": {n: largest(values[n], values["ours"]) for n in ("v2", "tf")},
        "max_abs_difference_from_finite_differences": {n: versus_numeric(values[n]) for n in values},
    }
    print(f"BlockLSTMV2 forward+backward, T={args.steps} B={args.batch} {args.depth}->{args.units}, "
          f"best/median of {args.repeats} ({result['machine']['cpu']}, {result['machine']['cores']} cores, "
          f"TensorFlow {tf.__version__})")
    for name, t in result["forward_backward_ms"].items():
        print(f"  {name:5s} {t['best']:8.2f} ms  (median {t['median']:.2f})")
    print("largest |gradient| (ours):", {n: round(v, 4) for n, v in scale.items()})
    for name, diff in result["max_abs_difference_from_ours"].items():
        print(f"max |{name} - ours|:", {n: float(f"{v:.3g}") for n, v in diff.items()})
    for name, diff in result["max_abs_difference_from_finite_differences"].items():
        print(f"max |{name} - finite differences| (10 entries each):", {n: float(f"{v:.3g}") for n, v in diff.items()})
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "blocklstm_gradient.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print("written", path)


if __name__ == "__main__":
    main()
