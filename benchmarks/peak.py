"""The device's measured matmul peak: what FLOP utilisation divides by.

    python -m benchmarks.peak --json                          # this CPU, fp32 and bf16
    python -m benchmarks.peak --json --device cuda --dtypes fp32,bf16

*Peak*: timed square GEMMs (``n x n`` by ``n x n``, ``2 n^3`` FLOPs each) in each precision on
the device, with the threads of the run (call it after ``torch.set_num_threads``): one warm-up
product, then products until ``seconds`` have passed (at least ``min_runs``); the best rate is
the peak (the denominator of utilisation, so a higher peak only lowers utilisation) and the
median is recorded beside it. ``n`` defaults to 8,192 on a GPU and 2,048 on a CPU. fp32 on a
GPU is computed as torch is set to compute it (``torch.get_float32_matmul_precision()``, recorded:
``highest`` is true fp32, ``high`` allows TF32) -- the same setting the model's steps run under.

*Model FLOPs* (:func:`benchmarks.common.count_flops`) per step / seconds per step / the peak
of the step's precision is the *utilisation* (:func:`benchmarks.common.utilisation`; bf16
autocast rows against the bf16 peak, although autocast keeps some products in fp32).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.common import emit

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_size(device: torch.device) -> int:
    return 8192 if device.type == "cuda" else 2048


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_peak(
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    n: int | None = None,
    seconds: float = 1.0,
    min_runs: int = 3,
) -> dict:
    """Best and median FLOP/s of ``n x n`` GEMMs in ``precision`` (``fp32``, ``bf16``,
    ``fp16``) on ``device``.

    Args:
        device (torch.device or str, optional): where to multiply. (default: :obj:`"cpu"`)
        precision (str, optional): the operands' dtype. (default: :obj:`"fp32"`)
        n (int, optional): the matrix size; :obj:`None`: 8,192 on a GPU, 2,048 on a CPU.
        seconds (float, optional): time to keep multiplying after the warm-up.
            (default: :obj:`1.0`)
        min_runs (int, optional): timed products at least. (default: :obj:`3`)
    """
    device = torch.device(device)
    if precision not in DTYPES:
        raise ValueError(f"precision must be one of {list(DTYPES)}, got {precision!r}")
    n = n or default_size(device)
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, generator=gen).to(DTYPES[precision])
    b = torch.randn(n, n, device=device, generator=gen).to(DTYPES[precision])
    torch.mm(a, b)  # warm-up: kernel selection, oneDNN primitive creation
    sync(device)
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        times.append(time.perf_counter() - t0)
    flops = 2.0 * n**3
    return {
        "precision": precision,
        "n": n,
        "runs": len(times),
        "threads": torch.get_num_threads(),
        "peak_flops_per_s": round(flops / min(times), 1),
        "median_flops_per_s": round(flops / statistics.median(times), 1),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def measure_peaks(device: torch.device | str, precisions, n: int | None = None, **kw) -> dict:
    """:func:`measure_peak` for each precision: ``{precision: result}``."""
    return {p: measure_peak(device, p, n, **kw) for p in dict.fromkeys(precisions)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtypes", default="fp32,bf16", help=f"comma-separated, of {list(DTYPES)}")
    ap.add_argument("--n", type=int, default=None, help="matrix size (default: by device)")
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per precision")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    res = measure_peaks(a.device, a.dtypes.split(","), a.n, seconds=a.seconds)
    return emit(res, a, _table)


def _table(res: dict) -> str:
    return "\n".join(
        f"{p}: {r['peak_flops_per_s'] / 1e9:.1f} GFLOP/s peak, "
        f"{r['median_flops_per_s'] / 1e9:.1f} median ({r['runs']} x n={r['n']}, "
        f"{r['threads']} threads)"
        for p, r in res.items()
    )


if __name__ == "__main__":
    main()
