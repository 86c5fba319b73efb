"""Everything a GPU changes, in one command and one JSON.

    python -m benchmarks.gpu_suite --json --out benchmarks/results/gpu_suite_<gpu>.json
    python -m benchmarks.gpu_suite --json --device cpu --tiny    # every part, shrunk (CI)

Parts, each a separately timed section with its own status (``ok``; ``failed`` with the error;
``skipped`` with the reason), so that one failing part loses none of the others' results; the
JSON is rewritten after every part (``--out``):

* ``parity``: ``pytest tests/nn/test_parity.py tests/nn/test_autocast_graph.py`` with
  ``PYG_MPNN_TEST_DEVICE`` set to the device (our model there, the reference on the CPU);
* ``peak``: the device's measured matmul peak, fp32 and bf16 (:mod:`benchmarks.peak`);
* ``train_step_<residues>_<impl>``: :mod:`benchmarks.train_step` on the device at 10,000 and
  50,000 residues for ``ours``, ``original`` and ``pyg_port`` (each in fp32 and bf16) and
  ``ours_compiled`` (bf16 + ``torch.compile``), with model FLOPs and utilisation per row;
  ``train_step_summary`` gathers the rates and the ratios of ours to the others;
* ``kernels``: torch.profiler over three steps (``--tiny``: one) of ours (fp32 and bf16) at the first train_step
  size: aten operators, GPU kernels and their time, host synchronisations and copies per step
  (on a CPU the kernel fields are null);
* ``memory_curve``: :mod:`benchmarks.memory_curve` on the device up to 100,000 residues;
* ``base_run``: ``python -m pyg_mpnn.train --exp base`` for ``--base-minutes`` (5) on the full
  embedded data, and the validation perplexity it reaches;
* ``ddp``: the same trainer under ``torchrun --nproc_per_node 1`` with
  ``train.distributed=ddp`` (world size 1 through ``pyg_mpnn/train/distributed.py``: nccl on a
  GPU, gloo on a CPU);
* ``loader_workers``: data wait as a share of the step time with 0 and ``--workers`` loader
  processes (the trainer's ``PhaseTimer``).

The precision of the memory curve, the runs and the loader part is ``--precision`` (``auto``:
bf16 on a GPU that supports it, fp32 elsewhere). ``--tiny`` shrinks every part (a few hundred
residues, a few steps) so that ``--device cpu --tiny`` runs in about a minute on a 2-core CPU
(``tests/perf/test_gpu_suite.py``): the parts whose work runs in child processes (parity, the
memory curve, the runs) run there on a background thread beside the in-process ones (on a GPU
every part runs alone), and it compiles nothing (inductor needs minutes on a CPU), so its
``ours_compiled`` part is skipped with that reason. Parts can be chosen with ``--parts``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from benchmarks import common, train_step
from benchmarks import gpu_suite_parts as parts
from benchmarks.common import REPO, command, emit, write_json

PART_NAMES = (
    "parity",
    "peak",
    "train_step",
    "kernels",
    "memory_curve",
    "base_run",
    "ddp",
    "loader_workers",
)


def plan(a: argparse.Namespace) -> dict:
    """What each part runs: the full sizes, or ``--tiny``'s."""
    if a.tiny:
        return {
            "parity_tests": [
                "tests/nn/test_parity.py::test_reference_order_from_randn_equals_ours"
            ],
            "parity_k": "fixtures",
            "train_sizes": [100],
            "train_repeats": 1,
            "train_data": REPO / "data" / "default.jsonl.gz",
            "train_max_length": 100,
            "memory_plain": [100, 300],
            "memory_checkpointing": [],
            "base_minutes": 1.0,
            "steps": 3,
            "workers": 2,
            "run_data": None,  # the embedded default set
            "run_sets": ["data.max_tokens=300", "data.max_length=150", "track.aim=false"],
        }
    return {
        "parity_tests": ["tests/nn/test_parity.py", "tests/nn/test_autocast_graph.py"],
        "parity_k": None,
        "train_sizes": [10_000, 50_000],
        "train_repeats": 3,
        "train_data": parts.train_data(a.workdir),
        "train_max_length": None,
        "memory_plain": [10_000, 50_000, 100_000],
        "memory_checkpointing": [100_000],
        "base_minutes": a.base_minutes,
        "steps": 20,
        "workers": a.workers,
        "run_data": "embedded",
        "run_sets": [],
    }


class Suite:
    """Runs the parts one after the other and keeps the JSON (``self.result``) up to date."""

    def __init__(self, a: argparse.Namespace, argv: list[str]):
        self.a, self.device, self.plan = a, torch.device(a.device), plan(a)
        self.precision = parts.pick_precision(a.precision, self.device)
        self.t0, self.lock, self.order, self.pending = time.perf_counter(), threading.Lock(), [], []
        self.background = ThreadPoolExecutor(1) if a.tiny else None
        self.result = {
            "command": command("benchmarks.gpu_suite", argv),
            "device": str(self.device),
            "tiny": a.tiny,
            "concurrent": "the parts that run child processes ran beside the others"
            if a.tiny
            else "none: every part ran alone",
            "precision": self.precision,
            "machine": machine(self.device),
            "workdir": str(a.workdir),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "parts": {},
        }

    def log(self, msg: str) -> None:
        print(
            f"[gpu_suite {time.perf_counter() - self.t0:6.1f} s] {msg}", file=sys.stderr, flush=True
        )

    def run(self, name: str, fn, *args) -> dict:
        """``fn(*args)`` as part ``name``: its seconds, status and result or error."""
        self.log(f"{name}: start")
        t0, cpu0, entry = time.perf_counter(), cpu_seconds(), {}
        try:
            entry = {"status": "ok", "result": fn(*args)}
        except parts.Skip as e:
            entry = {"status": "skipped", "reason": str(e)}
        except parts.PartFailed as e:  # failed after measuring something: keep it
            entry = {"status": "failed", "error": str(e), "result": e.result}
        except Exception as e:  # a failed part must not lose the others' results
            tb = traceback.format_exc(limit=8)
            entry = {"status": "failed", "error": f"{type(e).__name__}: {e}", "traceback": tb}
        finally:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        entry["cpu_seconds"] = round(cpu_seconds() - cpu0, 1)  # this process and its children
        with self.lock:
            self.order += [] if name in self.order else [name]
            self.result["parts"][name] = entry
            self.log(f"{name}: {entry['status']} in {entry['seconds']} s")
            self.save()
        return entry

    def part(self, name: str, fn, *args, child: bool = False) -> None:
        """Run part ``name`` now, or (``--tiny``, ``child``: a part whose work runs in child
        processes) on the background thread, beside the in-process parts: the CPU's two
        cores. On a GPU every part runs alone, so that none disturbs another's timing."""
        self.order.append(name)
        if child and self.background is not None:
            self.pending.append(self.background.submit(self.run, name, fn, *args))
        else:
            self.run(name, fn, *args)

    def save(self) -> None:
        r = self.result
        r["seconds"] = round(time.perf_counter() - self.t0, 1)
        r["parts"] = {n: r["parts"][n] for n in self.order if n in r["parts"]}
        statuses = [p["status"] for p in r["parts"].values()]
        r["summary"] = {s: statuses.count(s) for s in ("ok", "failed", "skipped")}
        if self.a.out:
            write_json(self.a.out, json.dumps(r, indent=2))

    def main(self) -> dict:
        with contextlib.redirect_stdout(sys.stderr):  # the parts' own prints: the log
            self._parts(PART_NAMES if self.a.parts == "all" else self.a.parts.split(","))
            for job in self.pending:
                job.result()
        if self.background is not None:
            self.background.shutdown()
        self.save()
        return self.result

    def _parts(self, chosen: list[str]) -> None:
        p, a, dev = self.plan, self.a, self.device
        runs = parts.RunSpec(dev, self.precision, p, a.workdir, a.threads)
        if "parity" in chosen:
            self.part("parity", parts.parity, dev, p, a.workdir, a.threads, child=True)
        if "peak" in chosen:
            self.part("peak", parts.peak_part, dev, a.tiny)
        if "memory_curve" in chosen:
            mem = (dev, p, self.precision, a.threads)
            self.part("memory_curve", parts.memory, *mem, child=True)
        if "base_run" in chosen:
            self.part("base_run", parts.base_run, runs, child=True)
        if "ddp" in chosen:
            self.part("ddp", parts.ddp, runs, child=True)
        if "train_step" in chosen:
            self.train_steps()
        if "kernels" in chosen:
            names = ["ours"] + (["ours" + train_step.BF16] if parts.bf16_ok(dev) else [])
            self.part("kernels", parts.kernel_counts, dev, p, names)
        if "loader_workers" in chosen:
            self.part("loader_workers", parts.loader_workers, runs)

    def train_steps(self) -> None:
        """One part per size and implementation (a model that fails, e.g. out of memory at
        50,000 residues, loses no other model's rows), then the summary across them."""
        bf16 = parts.bf16_ok(self.device)
        compiled = parts.compiled_impl()
        for size in self.plan["train_sizes"]:
            for impl in ("ours", "original", "pyg_port"):
                names = [impl] + ([impl + train_step.BF16] if bf16 else [])
                self.part(f"train_step_{size}_{impl}", self.train_step, size, names)
            name = f"train_step_{size}_{compiled}"
            if self.a.tiny:
                self.part(name, _skip, "--tiny compiles nothing (inductor takes minutes on a CPU)")
            else:
                names = [compiled + (train_step.BF16 if bf16 else "")]
                self.part(name, self.train_step, size, names)
        self.result["train_step_summary"] = parts.train_summary(self.result["parts"])

    def train_step(self, size: int, names: list[str]) -> dict:
        p, a = self.plan, self.a
        argv = ["--json", "--residues", str(size), "--repeats", str(p["train_repeats"])]
        argv += ["--impls", ",".join(names), "--device", str(self.device)]
        argv += ["--data", str(p["train_data"]), "--flops", "warmup" if a.tiny else "batch"]
        argv += ["--peak-n", "256"] if a.tiny else []  # as the tiny peak part
        argv += ["--max-length", str(p["train_max_length"])] if p["train_max_length"] else []
        argv += ["--threads", str(a.threads)] if a.threads else []
        res = train_step.main(argv)
        eager = [k for k, row in res["impls"].items() if row.get("compiled") is False]
        if eager:  # train.compile's fallback: timed, but not compiled
            raise parts.PartFailed(f"torch.compile fell back to eager for {eager}", res)
        return res


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _skip(reason: str):
    raise parts.Skip(reason)


def machine(device: torch.device) -> dict:
    """The common machine record (commit, CPU model, flags, threads, torch, load) and the
    device's."""
    m = {**common.machine(), "python": platform.python_version(), "device": str(device)}
    m["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        m["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        m["gpu_capability"] = f"{props.major}.{props.minor}"
        m["gpu_bf16"] = torch.cuda.is_bf16_supported()
    with contextlib.suppress(ImportError):
        import torch_geometric

        m["torch_geometric"] = torch_geometric.__version__
    return m


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    ap.add_argument("--tiny", action="store_true", help="every part shrunk (CI: about a minute)")
    ap.add_argument("--parts", default="all", help=f"comma-separated, of {', '.join(PART_NAMES)}")
    ap.add_argument("--base-minutes", type=float, default=5.0, help="the base run's time cap")
    ap.add_argument("--workers", type=int, default=4, help="loader processes to compare with 0")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--workdir", type=Path, default=None, help="run folders (default: runs/)")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    unknown = set(a.parts.split(",")) - set(PART_NAMES) if a.parts != "all" else set()
    if unknown:
        ap.error(f"--parts: unknown {sorted(unknown)}; the parts are {', '.join(PART_NAMES)}")
    if torch.device(a.device).type == "cuda" and not torch.cuda.is_available():
        ap.error(f"--device {a.device}: torch sees no CUDA device (use --device cpu)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    a.workdir = (a.workdir or REPO / "runs" / "gpu_suite" / stamp).resolve()
    a.workdir.mkdir(parents=True, exist_ok=True)
    return a


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    res = Suite(a, argv).main()
    return emit(res, a, _table)  # --out: the JSON the suite kept up to date, written once more


def _table(res: dict) -> str:
    lines = []
    for name, part in res["parts"].items():
        why = part.get("error") or part.get("reason") or ""
        lines.append(f"{name:32s} {part['status']:8s} {part['seconds']:7.1f} s  {why}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
