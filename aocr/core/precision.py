"""The arithmetic precision of the CNN's convolutions.

On CPUs with bfloat16 matrix units (Intel AMX or AVX-512 BF16), oneDNN runs bfloat16
convolutions faster than float32; elsewhere bfloat16 is emulated and slower.
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
# oneDNN's ISA limits (ONEDNN_MAX_CPU_ISA, or its older name DNNL_MAX_CPU_ISA) that still include bfloat16
# arithmetic; any other value, AVX2 for one, keeps oneDNN to kernels without it.
BF16_ISA_LIMITS = {"ALL", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
                   "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2"}


def cpu_has_bf16_units(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU's flags list AMX or AVX-512 BF16; False where there is no /proc/cpuinfo."""
    try:
        with open(cpuinfo) as f:
            flags = next((line for line in f if line.startswith("flags")), "flags:")
    except OSError:
        return False
    return bool(BF16_CPU_FLAGS & set(flags.split(":", 1)[1].split()))


def isa_limit() -> str | None:
    """The ISA oneDNN is limited to by the environment, upper-cased, or None when it is not limited."""
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return limit.strip().upper() if limit else None


def bf16_units_missing() -> str | None:
    """Why oneDNN has no bfloat16 units to run on here, or None when it has them."""
    if not cpu_has_bf16_units():
        return "this CPU has no bfloat16 units (AMX or AVX-512 BF16)"
    limit = isa_limit()
    if limit is not None and limit not in BF16_ISA_LIMITS:
        return f"ONEDNN_MAX_CPU_ISA={limit} keeps oneDNN to kernels without bfloat16"
    return None


def _visible_gpu() -> int | None:
    """0 where TensorFlow sees a GPU (which it then uses), None where it sees none."""
    return 0 if tf.config.list_physical_devices("GPU") else None


def _warn_without_units(gpu_id: int | None) -> None:
    missing = bf16_units_missing() if gpu_id is None else None
    if missing:
        log.warning("--precision bfloat16: %s, so the bfloat16 convolutions are emulated, slower than float32 "
                    "(--precision float32 or auto runs float32)", missing)


def _auto(gpu_id: int | None) -> str:
    """What --precision auto chooses, logged with the reason."""
    if gpu_id is not None:
        log.info("--precision auto: float32 on the GPU")
        return "float32"
    missing = bf16_units_missing()
    if missing:
        log.info("--precision auto: float32, since %s", missing)
        return "float32"
    log.info("--precision auto: bfloat16 convolutions on this CPU's bfloat16 units")
    return "bfloat16"


def inference_precision(choice: str, gpu_id: int | None) -> str:
    """--precision of test and predict: "auto" is bfloat16 on a CPU with usable bfloat16 units when no
    --gpu-id is given, float32 otherwise."""
    return _auto(gpu_id) if choice == "auto" else choice


def serving_precision(choice: str) -> str:
    """--precision of aocr serve: "auto" is bfloat16 on a CPU with usable bfloat16 units where TensorFlow sees
    no GPU. An explicit bfloat16 without those units serves float32, and says so: TensorFlow's rewrite of the
    loaded graph into bfloat16 applies only where the units are, and would silently leave it float32."""
    gpu = _visible_gpu()
    if choice == "auto":
        return _auto(gpu)
    missing = bf16_units_missing() if gpu is None else None
    if choice == "bfloat16" and missing:
        log.warning("--precision bfloat16: %s, so TensorFlow does not rewrite the model into bfloat16: serving "
                    "in float32", missing)
        return "float32"
    return choice


# Matrix products stay float32 under the rewrite: the decoder's are small, one per step, and their casts
# cost more than they save.
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
    if precision == "auto":
        return tf.bfloat16 if _auto(gpu_id) == "bfloat16" else tf.float32
    return tf.float32
