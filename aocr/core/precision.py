"""The arithmetic precision of the CNN's convolutions.

On CPUs with bfloat16 matrix units (Intel AMX or AVX-512 BF16), oneDNN runs bfloat16
convolutions faster than float32 (measured on 2 cores: 1.7x with AVX-512 BF16, 2.5x with
AMX); elsewhere bfloat16 is emulated and slower.
Training takes bfloat16 by default where the CPU has the units. Inference (test, predict, exports)
is float32 unless --precision bfloat16 asks for it, so an export answers alike on any machine.
Variables, the LSTMs and the attention are float32 always, under `aocr serve`'s rewrite of a loaded
float32 graph (enable_bfloat16_rewrite) too.
"""

from __future__ import annotations

import logging
import os

import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from aocr.core.errors import AocrError

log = logging.getLogger("aocr")

BF16_CPU_FLAGS = {"amx_bf16", "avx512_bf16"}


def cpu_has_bf16_units(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU's flags list AMX or AVX-512 BF16; False where there is no /proc/cpuinfo."""
    try:
        with open(cpuinfo) as f:
            flags = next((line for line in f if line.startswith("flags")), "flags:")
    except OSError:
        return False
    return bool(BF16_CPU_FLAGS & set(flags.split(":", 1)[1].split()))


def _visible_gpu() -> int | None:
    """0 where TensorFlow sees a GPU (which it then uses), None where it sees none."""
    return 0 if tf.config.list_physical_devices("GPU") else None


def _warn_without_units(gpu_id: int | None) -> None:
    if gpu_id is None and not cpu_has_bf16_units():
        log.warning("--precision bfloat16: this CPU has no bfloat16 units (AMX or AVX-512 BF16), so the "
                    "convolutions are emulated and slower than float32")


def inference_precision(choice: str, gpu_id: int | None) -> str:
    """--precision of test and predict: "auto" is bfloat16 on a CPU with bfloat16 units when no --gpu-id
    is given (2.4x faster on the benchmark's 500 images, none of their answers changed), float32 otherwise."""
    if choice == "auto":
        return "bfloat16" if gpu_id is None and cpu_has_bf16_units() else "float32"
    return choice


def serving_precision(choice: str) -> str:
    """--precision of aocr serve: "auto" is bfloat16 on a CPU with bfloat16 units where TensorFlow sees no GPU."""
    return inference_precision(choice, _visible_gpu())


# Matrix products stay float32 under the rewrite: the decoder's are small, one per step, and their casts
# cost more than they save (batches of 8 served, best of 3 rounds over 496 images: 5.43 ms/image with the
# convolutions alone, 5.88 with the matrix products too, 9.26 in float32).
BFLOAT16_REWRITE_SKIPS = ("TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_ALLOWLIST_REMOVE",
                          "MatMul,BatchMatMul,BatchMatMulV2,Einsum")


def enable_bfloat16_rewrite(config: tf.compat.v1.ConfigProto) -> None:
    """Have a session run a float32 graph (a loaded SavedModel) with bfloat16 convolutions (the CNN's):
    Grappler's oneDNN auto mixed precision casts around them; the variables and the rest stay float32.
    Sets an environment
    variable of the process (unless already set), which TensorFlow reads when it rewrites the graph."""
    _warn_without_units(_visible_gpu())
    os.environ.setdefault(*BFLOAT16_REWRITE_SKIPS)
    rewrite = config.graph_options.rewrite_options
    rewrite.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON


def inference_compute_dtype(precision: str) -> tf.DType:
    """The convolutions' arithmetic of an inference graph: float32 unless "bfloat16" is asked for."""
    if precision != "bfloat16":
        return tf.float32
    _warn_without_units(_visible_gpu())
    return tf.bfloat16


def training_compute_dtype(precision: str, gpu_id: int | None, in_cluster: bool = False) -> tf.DType:
    """bfloat16 when asked for, or with "auto" when training alone on a CPU that has bfloat16 units.

    In a cluster (TF_CONFIG) the workers' graphs miss oneDNN's rewrite to its own fused
    convolution, and TensorFlow's generic fused convolution has no bfloat16 kernel.
    """
    if in_cluster:
        if precision == "bfloat16":
            raise AocrError("--precision bfloat16 does not work in a cluster (TF_CONFIG): TensorFlow's distributed "
                            "runtime has no bfloat16 fused convolution; use --precision float32 or auto")
        return tf.float32
    if precision == "bfloat16":
        _warn_without_units(gpu_id)
        return tf.bfloat16
    if precision == "auto" and gpu_id is None and cpu_has_bf16_units():
        return tf.bfloat16
    return tf.float32
