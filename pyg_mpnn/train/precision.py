"""Device and numeric precision: autocast contexts and the GradScaler.

``auto``: fp16 autocast with a GradScaler on CUDA (the original's ``--mixed_precision``), fp32 on
CPU. ``bf16``: autocast to bfloat16 on CPU or GPU, no scaler (same exponent range as fp32).
``fp16`` needs a GPU. ``fast``: bf16 where the device computes it natively (a CUDA GPU with
bf16, a CPU with AVX512_BF16 or AMX), else fp32: on other CPUs bf16 is emulated and slower than
fp32. The loss is always computed in fp32 from the log-probabilities.
"""

from __future__ import annotations

import contextlib
import gc

import torch

from pyg_mpnn.errors import BadValue
from pyg_mpnn.train.auto import cpu_flags


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BadValue("train.device=cuda but no CUDA device is available (use auto or cpu)")
    return dev


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` has bf16 arithmetic in hardware (not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def pick_precision(name: str, device: torch.device) -> str:
    if name == "fast":
        return "bf16" if native_bf16(device) else "fp32"
    if name == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise BadValue("train.precision=fp16 needs a GPU (use bf16 on CPU)")
    return name


def autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    return torch.amp.GradScaler(device.type, enabled=(precision == "fp16"))


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak bytes allocated by tensors; CPU: the process's peak resident set size
    (``VmHWM``, since the last :func:`reset_peak_memory`), in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    import resource  # POSIX only

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def resident_mb() -> float | None:
    """The process's current resident set size (Linux ``VmRSS``) in MiB; None elsewhere."""
    return _proc_status_mb("VmRSS")


def _proc_status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def reset_peak_memory(device: torch.device) -> float:
    """Start a new peak and return the baseline it starts from (MiB): CUDA allocator stats,
    or on CPU Linux's ``VmHWM``, after handing freed heap memory back to the OS
    (``malloc_trim``) so that what an earlier model freed does not count as this one's."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    gc.collect()
    try:
        import ctypes  # glibc only

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return peak_memory_mb(device)
