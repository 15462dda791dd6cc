"""Which device and precision a run uses: CUDA, then MPS, then CPU; bf16 where it is native."""

from __future__ import annotations

import ctypes
import os
import platform
from functools import lru_cache

import torch

# oneDNN keeps a compiled primitive per matmul shape (1,024 by default: ~500 MB of peak memory with
# one shape per batch length). Batches padded to multiples of 8 need far fewer; 256 kept every one
# cached on MiniLM/MRPC (a cache of 16 thrashed: 8% slower). Set before oneDNN's first use.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "256")
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def keep_freed_memory() -> None:
    """glibc hands every freed block over 32 MB back to the OS, so a tensor that size made each step
    (the dense word-embedding gradient: 47 MB for BERT's vocabulary) page-faults anew: 12.6 ms to
    zero one here, 1.7 ms from a kept heap. Raise the mmap and trim thresholds to 1 GB (Linux)."""
    if platform.system() != "Linux" or os.environ.get("SEQTUNE_KEEP_FREED_MEMORY") == "0":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    except (OSError, AttributeError):  # not glibc (musl): nothing to tune
        pass


def pick_device(use_cpu: bool = False) -> torch.device:
    """CUDA, then Apple's MPS, then the CPU (`use_cpu` forces the CPU)."""
    if not use_cpu and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if not use_cpu and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: bf16 matmuls run faster than fp32 rather than being emulated."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags()) or (
        platform.system() == "Darwin" and platform.machine() == "arm64")


def cuda_native_bf16(index: int) -> bool:
    """Ampere (compute capability 8.0) and newer run bf16 on their tensor cores."""
    return torch.cuda.get_device_capability(index) >= (8, 0)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` runs bf16 matmuls natively (the rule `doctor` reports too)."""
    if device.type == "cuda":
        return cuda_native_bf16(device.index if device.index is not None else torch.cuda.current_device())
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


# On CUDA a step of a classifier-sized model is bound by launching kernels, and bf16 autocast adds a
# cast in front of nearly every matmul: it costs more than the tensor cores give back until the work
# per forward is large. Measured on an H100 (issue 18): MiniLM at 8 x ~50 tokens x 384 and BERT-base
# at 32 x ~50 tokens x 768 (1.2M) both trained faster in fp32 (with TF32). The switch-over point above
# that is an estimate still to be measured on a GPU: a forward of tokens x width at least this much.
CUDA_BF16_MIN_WORK = 8_000_000


def pick_precision(device: torch.device, bf16: bool | None, fp16: bool,
                   work: int | None = None) -> torch.dtype | None:
    """The autocast dtype (None: fp32). bf16=None decides by the hardware and, on CUDA, by `work`:
    tokens x hidden width per forward (unknown: fp32)."""
    if fp16:
        return torch.float16
    if bf16 is None:
        return automatic_precision(device.type, native_bf16(device), work)
    return torch.bfloat16 if bf16 else None


def automatic_precision(device_type: str, native: bool, work: int | None = None) -> torch.dtype | None:
    """What bf16=None picks (`doctor` shows the same rule): on a CPU, bf16 where it is native (the
    matmuls dominate there); on CUDA, bf16 only where the work per forward outweighs the casts."""
    if not native or device_type not in ("cuda", "cpu"):
        return None
    if device_type == "cuda" and (work is None or work < CUDA_BF16_MIN_WORK):
        return None
    return torch.bfloat16


def use_tf32(device: torch.device, tf32: bool | None, autocast_dtype: torch.dtype | None) -> bool:
    """TF32 matmuls for fp32 work on CUDA: tf32=None turns them on where the GPU has them (Ampere and
    newer) and the run computes in fp32; True/False force them. A process-wide torch setting, as
    transformers' `tf32` is. Returns whether they are on."""
    if device.type != "cuda":
        return False
    on = tf32 if tf32 is not None else (autocast_dtype is None and native_bf16(device))
    if tf32 is not None or on:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on
    return on


def work_per_forward(lengths: list[int], batch_size: int, model: torch.nn.Module) -> int:
    """Tokens x hidden width of a typical forward: the mean length times the batch, times the width."""
    width = getattr(getattr(model, "config", None), "hidden_size", None) or 768
    return int(sum(lengths) / max(len(lengths), 1) * batch_size * width)


def master_weights(model: torch.nn.Module, keep_dtype: bool) -> str:
    """Half-precision weights (a checkpoint stored in bf16 or fp16) become fp32 master weights, so that
    the optimizer updates them exactly; `keep_dtype` trains them as they are. Returns a note for the log."""
    stored = {p.dtype for p in model.parameters() if p.is_floating_point()}
    half = stored & {torch.bfloat16, torch.float16}
    if not half:
        return ""
    names = "/".join(sorted(str(d).removeprefix("torch.") for d in half))
    if keep_dtype:
        return f"weights kept in {names} (keep_model_dtype=True: no fp32 master copy)"
    model.float()
    return f"weights stored in {names}, upcast to fp32 master weights"


PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16 autocast, fp32 weights",
                   torch.float16: "fp16 autocast with loss scaling, fp32 weights"}


def length_multiple(device: torch.device, dtype: torch.dtype | None) -> int | None:
    """What our collator rounds batch lengths up to. oneDNN (CPU bf16/fp16) compiles and caches a kernel
    per matmul shape, and tensor cores want multiples of 8: there, 8 (MiniLM/MRPC, bf16 CPU: 8% faster
    training, 17% faster evaluation, 200 MB less peak memory). fp32 on the CPU runs MKL's sgemm, which
    keeps nothing per shape: no rounding (Zen 3, fp32: training 4%, evaluation 7% faster)."""
    if device.type == "cpu" and dtype is None:
        return None
    return 8


def describe(device: torch.device, dtype: torch.dtype | None, tf32: bool = False) -> str:
    """One line for the log: the device by name, and the precision."""
    if device.type == "cuda":
        name = f"cuda:{device.index} ({torch.cuda.get_device_name(device)})"
    elif device.type == "cpu":
        name = f"cpu ({torch.get_num_threads()} threads)"
    else:
        name = str(device)
    return f"{name}, {PRECISION_NAMES[dtype]}" + (" (TF32 matmuls)" if tf32 and dtype is None else "")
