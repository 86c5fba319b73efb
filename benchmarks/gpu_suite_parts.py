"""The parts of :mod:`benchmarks.gpu_suite`: each takes the device and the plan and returns its
result (a JSON-able dict), raises :class:`Skip` with a reason, or raises :class:`PartFailed`
with what it measured before it failed."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks import memory_curve, peak, train_step
from benchmarks.common import REPO, TRAIN, command
from pyg_mpnn.track.metrics import read_metrics
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer


class Skip(Exception):
    """A part that does not apply here; its message is the reason."""


class PartFailed(Exception):
    """A part that failed after measuring something: ``result`` keeps it."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


def bf16_ok(device: torch.device) -> bool:
    """bf16 on a GPU that computes it; on a CPU always (emulated where not native)."""
    return torch.cuda.is_bf16_supported() if device.type == "cuda" else True


def pick_precision(name: str, device: torch.device) -> str:
    """``auto``: bf16 on a GPU that supports it, else fp32; fp32 on a CPU unless asked."""
    if name == "auto":
        return "bf16" if device.type == "cuda" and bf16_ok(device) else "fp32"
    if name == "bf16" and not bf16_ok(device):
        raise SystemExit(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16")
    return name


def _env(threads: int | None = None, **extra) -> dict:
    """The environment of a child process: this tree first on the path, ``threads``."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def _tail(text: str, n: int = 3000) -> str:
    return text[-n:]


# -- parity ----------------------------------------------------------------------------------
def junit_counts(path: Path) -> dict:
    """Passed, failed and skipped tests of a pytest ``--junitxml`` report (failures and
    skips with their messages)."""
    out = {"passed": [], "failed": {}, "skipped": {}}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            out["failed"][name] = (bad.get("message") or "")[:500]
        elif case.find("skipped") is not None:
            out["skipped"][name] = case.find("skipped").get("message") or ""
        else:
            out["passed"].append(name)
    return out


def parity(device: torch.device, plan: dict, workdir: Path, threads: int | None) -> dict:
    """The parity tests with our model on ``device`` (``PYG_MPNN_TEST_DEVICE``)."""
    junit = workdir / "parity.xml"
    args = ["-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *plan["parity_tests"]]
    args += ["-k", plan["parity_k"]] if plan["parity_k"] else []
    cmd = [sys.executable, "-m", "pytest", *args]
    env = _env(threads, PYG_MPNN_TEST_DEVICE=str(device))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    res = {
        "command": f"PYG_MPNN_TEST_DEVICE={device} python -m pytest " + " ".join(args[4:]),
        "returncode": proc.returncode,
        "summary": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "",
    }
    if junit.exists():
        res.update(junit_counts(junit))
    if proc.returncode != 0 or not res.get("passed"):
        raise PartFailed(f"pytest exit {proc.returncode}: {res['summary']}", res)
    return res


# -- peak and train_step ---------------------------------------------------------------------
def peak_part(device: torch.device, tiny: bool) -> dict:
    """The measured matmul peak of each precision the suite times."""
    precisions = ["fp32"] + (["bf16"] if bf16_ok(device) else [])
    n, seconds = (256, 0.2) if tiny else (None, 2.0)
    return peak.measure_peaks(device, precisions, n, seconds=seconds)


def train_data(workdir: Path) -> Path:
    """train_step's batches: the shared db5.5 train set, else the full embedded data's db5.5
    parts (``data/default_db55_*``, 143k residues) in one file (gzip members concatenated)."""
    if TRAIN.exists():
        return TRAIN
    out = workdir / "embedded_db55.jsonl.gz"
    with open(out, "wb") as f:
        for part in sorted((REPO / "data").glob("default_db55_*.jsonl.gz")):
            f.write(part.read_bytes())
    return out


def _compiled_ours(name: str) -> train_step.Impl:
    im = train_step.BUILDERS["ours"](name)  # plain ours: the name is not ours_concat & co.
    im.forward = torch.compile(im.model, dynamic=True)  # the same module, moved by Impl.to
    return im


def compiled_impl() -> str:
    """The train_step implementation that is ours under ``torch.compile``: main's
    ``ours_compiled`` when it has one, else the suite's own (``dynamic=True``)."""
    if "ours_compiled" not in train_step.BUILDERS:
        train_step.BUILDERS["ours_compiled"] = _compiled_ours
        train_step.DESCRIPTIONS["ours_compiled"] = (
            train_step.DESCRIPTIONS["ours"] + ", under torch.compile(dynamic=True) (gpu_suite's)"
        )
    return "ours_compiled"


RATIOS = [  # (first, second): residues/s of the first over the second, where both ran
    ("ours", "original"),
    ("ours", "pyg_port"),
    ("ours_bf16", "original_bf16"),
    ("ours_bf16", "pyg_port_bf16"),
    ("ours_bf16", "ours"),
    ("ours_compiled_bf16", "ours_bf16"),
    ("ours_compiled_bf16", "original"),
    ("ours_compiled", "ours"),
]


def train_summary(parts: dict) -> dict:
    """Per size: every row's rate, memory and utilisation, and the ratios of :data:`RATIOS`
    (rows of different parts: the same seeded batch, timed in separate runs)."""
    sizes: dict = {}
    for name, part in parts.items():
        if not name.startswith("train_step_") or part["status"] == "skipped":
            continue
        res = part.get("result") or {}
        size = sizes.setdefault(name.split("_")[2], {"residues": None, "rows": {}})
        size["residues"] = size["residues"] or res.get("residues")
        for impl, row in res.get("impls", {}).items():
            keep = ("precision", "median_s", "residues_per_s", "peak_mem_mb", "utilisation")
            size["rows"][impl] = {k: row.get(k) for k in keep}
    for size in sizes.values():
        rate = {k: v["residues_per_s"] for k, v in size["rows"].items()}
        size["ratios"] = {
            f"{a}/{b}": round(rate[a] / rate[b], 3) for a, b in RATIOS if a in rate and b in rate
        }
    return sizes


# -- memory ----------------------------------------------------------------------------------
def memory(device: torch.device, plan: dict, precision: str, threads: int | None) -> dict:
    """:mod:`benchmarks.memory_curve` on ``device``: plain steps, and checkpointed ones at the
    largest size."""
    argv = ["--json", "--device", str(device)] + (["--bf16"] if precision == "bf16" else [])
    argv += ["--threads", str(threads)] if threads else []
    rows = []
    for variant, sizes in (("plain", "memory_plain"), ("checkpointing", "memory_checkpointing")):
        if plan[sizes]:
            sizes = ",".join(map(str, plan[sizes]))
            rows += memory_curve.main(argv + ["--sizes", sizes, "--variants", variant])
    for r in rows:
        if "peak_mem_mb" in r:
            r["mb_per_residue"] = round(r["peak_mem_mb"] / r["residues"], 4)
    res = {"command": command("benchmarks.memory_curve", argv), "rows": rows}
    res["precision"] = precision
    failed = [f"{r['variant']} {r['residues']}" for r in rows if "error" in r]
    if failed:
        raise PartFailed(f"memory_curve failed at {', '.join(failed)}", res)
    return res


# -- training runs ---------------------------------------------------------------------------
@dataclass
class RunSpec:
    """What the training parts share: device, precision, plan, folder, threads."""

    device: torch.device
    precision: str
    plan: dict
    workdir: Path
    threads: int | None

    def sets(self, *extra: str) -> list[str]:
        """``--set`` values of every run: device, precision, no bars, the plan's, ``extra``."""
        out = [f"train.device={self.device}", f"train.precision={self.precision}"]
        out += ["train.progress=false", *self.plan["run_sets"], *extra]
        out += [f"train.threads={self.threads}"] if self.threads else []
        return out

    def command(self, out: Path, *extra: str) -> list[str]:
        """``python -m pyg_mpnn.train --exp base`` arguments writing into ``out``."""
        argv = ["-m", "pyg_mpnn.train", "--exp", "base", "--out", str(out)]
        argv += ["--data", self.plan["run_data"]] if self.plan["run_data"] else []
        for s in self.sets(*extra):
            argv += ["--set", s]
        return argv


def _run(cmd: list[str], spec: RunSpec, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=REPO, env=_env(spec.threads), capture_output=True, text=True, timeout=timeout
    )


def run_summary(out: Path) -> dict:
    """A finished run folder: its final metrics, steps, validation curve and step rate."""
    final = json.loads((out / "run.json").read_text()).get("final") or {}
    rows = read_metrics(out)
    valid = [r for r in rows if r["subset"] == "valid" and r["name"] == "ppl"]
    rates = [r["value"] for r in rows if r["name"] == "residues_per_s" and not r["subset"]]
    waits = [r["value"] for r in rows if r["name"] == "data_wait_frac"]
    return {
        "final": final,
        "valid_ppl": final.get("valid_ppl"),
        "steps": final.get("step"),
        "valid_curve": [[r["step"], round(r["wall_s"], 1), r["value"]] for r in valid],
        "median_residues_per_s": statistics.median(rates) if rates else None,
        "median_data_wait_frac": statistics.median(waits) if waits else None,
    }


def base_run(spec: RunSpec) -> dict:
    """``--exp base`` for the plan's minutes: the validation perplexity it reaches."""
    out, minutes = spec.workdir / "base", spec.plan["base_minutes"]
    extra = [f"train.max_minutes={minutes}"]
    if spec.plan["run_data"] is None:  # --tiny: a few steps, a small validation
        extra += [f"train.max_steps={spec.plan['steps']}", "data.valid_max_proteins=2"]
    cmd = [sys.executable, *spec.command(out, *extra)]
    proc = _run(cmd, spec, timeout=60 * minutes + 900)
    res = {"command": "python " + " ".join(cmd[1:]), "returncode": proc.returncode}
    if proc.returncode != 0:
        raise PartFailed(f"exit {proc.returncode}: {_tail(proc.stderr, 1500)}", res)
    res.update(run_summary(out))
    if res["valid_ppl"] is None:
        raise PartFailed("the run ended without a validation perplexity", res)
    return res


def ddp(spec: RunSpec) -> dict:
    """The trainer under ``torchrun --nproc_per_node 1`` with ``train.distributed=ddp``."""
    out, steps = spec.workdir / "ddp", spec.plan["steps"]
    extra = ["train.distributed=ddp", f"train.max_steps={steps}", "data.valid_max_proteins=2"]
    extra += ["track.aim=false"]
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
    cmd = [sys.executable, *launcher, *spec.command(out, *extra)]
    proc = _run(cmd, spec, timeout=1200)
    res = {
        "command": "torchrun " + " ".join(cmd[3:]),
        "backend": "nccl" if spec.device.type == "cuda" else "gloo",
        "returncode": proc.returncode,
    }
    if proc.returncode != 0:
        raise PartFailed(f"exit {proc.returncode}: {_tail(proc.stderr, 1500)}", res)
    res.update(run_summary(out))
    if res["steps"] != steps:
        raise PartFailed(f"{res['steps']} steps instead of {steps}", res)
    return res


def _loader_run(spec: RunSpec, workers: int) -> dict:
    """A few steps of the trainer in this process with ``workers`` loader processes."""
    sets = spec.sets(
        f"data.num_workers={workers}",
        f"train.max_steps={spec.plan['steps']}",
        "data.valid_max_proteins=2",
        "track.aim=false",
        "track.layer_every=0",
    )
    sets += [f"data.path={spec.plan['run_data']}"] if spec.plan["run_data"] else []
    trainer = Trainer(load_experiment("base", sets), spec.workdir / f"workers_{workers}")
    trainer.fit()
    steps = trainer.step_times[1:]  # the first step also waits for the workers to start
    if not steps:
        raise RuntimeError(f"{len(trainer.step_times)} steps: too few to time the data wait")
    wait, total = sum(s["data_wait"] for s in steps), sum(s["total"] for s in steps)
    return {
        "workers": workers,
        "steps_timed": len(steps),
        "median_step_s": round(statistics.median(s["total"] for s in steps), 4),
        "mean_data_wait_s": round(wait / len(steps), 4),
        "data_wait_frac": round(wait / total, 4),
        "residues_per_s": round(sum(s["residues"] for s in steps) / total, 1),
    }


def loader_workers(spec: RunSpec) -> dict:
    """Data wait as a share of the step with 0 and ``workers`` loader processes."""
    runs = [_loader_run(spec, w) for w in (0, spec.plan["workers"])]
    return {
        "what": "data wait (time for the batch to arrive) / step time, steps after the first",
        "runs": runs,
    }


# -- kernels per step --------------------------------------------------------------------------
SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def _profile_counts(prof, steps: int) -> dict:
    """Per-step counts of a profile of ``steps`` steps: aten operators, GPU kernels (and their
    time), host synchronisations and copies, and the ten kernels that launch most often."""
    events = prof.events()
    gpu = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    kernels: dict[str, int] = {}
    for e in gpu:
        kernels[e.name] = kernels.get(e.name, 0) + 1
    top = sorted(kernels.items(), key=lambda kv: -kv[1])[:10]
    return {
        "aten_ops_per_step": sum(e.name.startswith("aten::") for e in events) / steps,
        "gpu_kernels_per_step": len(gpu) / steps if gpu else None,
        "gpu_kernel_ms_per_step": round(
            sum(e.time_range.elapsed_us() for e in gpu) / 1e3 / steps, 3
        )
        if gpu
        else None,
        "host_syncs_per_step": sum(e.name in SYNC_CALLS for e in events) / steps,
        "memcpy_calls_per_step": sum("Memcpy" in e.name for e in events) / steps,
        "top_kernels": [{"name": n[:120], "per_step": c / steps} for n, c in top],
    }


def kernel_counts(device: torch.device, plan: dict, precision_names: list[str]) -> dict:
    """torch.profiler over the plan's ``train_repeats`` train_step steps of ours (after a warm-up
    step) at its first size, for each of ``precision_names`` (``ours``, ``ours_bf16``): the operators
    and GPU kernels a step launches (on a CPU the kernel fields are null)."""
    from torch.profiler import ProfilerActivity, profile

    size, steps = plan["train_sizes"][0], plan["train_repeats"]
    graphs = train_step.pick_graphs(size, 0, plan["train_data"], plan["train_max_length"])
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    out = {"residues": sum(g.num_nodes for g in graphs), "steps_profiled": steps, "impls": {}}
    for im in train_step.build(precision_names, 0, device):
        inputs = im.inputs(graphs)
        im.step(inputs)  # warm-up: allocator, kernels, lazy imports
        peak.sync(device)
        with profile(activities=acts) as prof:
            for _ in range(steps):
                im.step(inputs)
            peak.sync(device)
        out["impls"][im.name] = _profile_counts(prof, steps)
    out["note"] = "train_step's step (forward, backward, Adam) reads the loss once a step"
    return out
