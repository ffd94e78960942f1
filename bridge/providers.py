"""onnxruntime execution providers: TensorRT or CUDA when the machine has them, else CPU; sessions built alike."""

from __future__ import annotations

import ctypes
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort
import psutil

from accompgen.core.errors import UserError

log = logging.getLogger(__name__)

DEVICES = ("auto", "tensorrt", "cuda", "cpu")
# GroupQueryAttention with an attention_bias (the in-place cache) runs on the CPU since 1.22; MatMulNBits with
# 8-bit weights (quantized bundles) too.
MIN_ORT_VERSION = "1.22"
_PROVIDER = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
_LIBRARIES = {  # a provider listed by onnxruntime still needs its runtime library on the machine
    "cuda": ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so"),
    "tensorrt": ("nvinfer_10.dll",) if sys.platform == "win32" else ("libnvinfer.so.10", "libnvinfer.so"),
}


# CUDA provider settings: an arena that grows by what is asked, not in doubling chunks (a long take would
# otherwise reserve twice its cache); cuDNN's heuristic algorithm choice instead of benchmarking every new input
# shape (the codec decoder sees a new length per chunk); copies in the default stream, as IOBinding expects.
CUDA_OPTIONS = {
    "arena_extend_strategy": "kSameAsRequested",
    "cudnn_conv_algo_search": "HEURISTIC",
    "do_copy_in_default_stream": "1",
}
# TensorRT builds an engine per input shape: it caches them, and runs in fp16 where the bundle does.
TENSORRT_OPTIONS = {"trt_engine_cache_enable": "True", "trt_fp16_enable": "True"}


@dataclass(frozen=True)
class Device:
    """Where the graphs run: `kind` is tensorrt, cuda or cpu; IOBinding keeps tensors on `ort_device`."""

    kind: str
    providers: tuple[str, ...]

    def provider_options(self) -> list[tuple[str, dict[str, str]]]:
        options = {_PROVIDER["cuda"]: CUDA_OPTIONS, _PROVIDER["tensorrt"]: TENSORRT_OPTIONS}
        return [(provider, options.get(provider, {})) for provider in self.providers]

    @property
    def ort_device(self) -> str:
        return "cpu" if self.kind == "cpu" else "cuda"


def _loadable(kind: str) -> bool:
    if _PROVIDER[kind] not in ort.get_available_providers():
        return False
    for name in _LIBRARIES[kind]:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def usable_devices() -> list[str]:
    """`auto`, then each device this machine has a working runtime for (the CPU always), as --device names them."""
    return ["auto", *(kind for kind in _LIBRARIES if _loadable(kind)), "cpu"]


def choose_device(requested: str = "auto") -> Device:
    """CUDA when present, else CPU; or the device asked for (an error if it is missing).

    `auto` does not pick TensorRT: the KV cache grows every step, and without fixed optimisation profiles
    TensorRT rebuilds its engine as shapes leave the ones it has seen. `--device tensorrt` is there for bundles
    and profiles tuned for it."""
    if requested not in DEVICES:
        raise UserError(f"unknown device {requested!r}: use one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return Device("cpu", (_PROVIDER["cpu"],))
    candidates = ["cuda"] if requested == "auto" else [requested]
    for kind in candidates:
        if _loadable(kind):
            chain = ["tensorrt", "cuda", "cpu"][["tensorrt", "cuda"].index(kind) :]
            return Device(kind, tuple(_PROVIDER[k] for k in chain))
    if requested != "auto":
        raise UserError(f"--device {requested} was asked for, but this machine has no working {requested} runtime")
    return Device("cpu", (_PROVIDER["cpu"],))


def physical_cores() -> int:
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def open_session(path: Path, device: Device) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = physical_cores()  # hyperthreads only contend for the same FMA units
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=device.provider_options())
    except Exception as err:  # onnxruntime raises its own exception types for unreadable graphs
        hint = ""
        if "GroupQueryAttention" in str(err) or "MatMulNBits" in str(err):
            hint = (
                f" (onnxruntime {ort.__version__} lacks an operator the graph uses: install onnxruntime >= "
                f"{MIN_ORT_VERSION}, or export the bundle again with --cache growing and without --quantize)"
            )
        raise UserError(f"onnxruntime cannot load {path}: {err}{hint}") from err
    if session.get_providers()[0] != device.providers[0]:
        log.warning("%s fell back to %s", path.name, session.get_providers()[0])
    return session
