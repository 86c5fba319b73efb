"""``--profile``: torch.profiler over a few training steps, plus our own step-time breakdown.

Writes into ``<run>/profile/``: ``trace.json`` (Chrome trace: open in chrome://tracing or
https://ui.perfetto.dev), ``key_averages.txt`` (operator table sorted by self CPU time, and
by CUDA time on a GPU), ``breakdown.json`` (mean seconds per step and share of the step for
each phase: data wait, host-to-device copy, forward, backward, optimizer, tracking; measured
with ``perf_counter`` around each phase, synchronising the GPU when there is one). The table
and breakdown also go to the Aim run (``profile_key_averages`` text, ``profile`` attribute).
The profiler schedule is ``profile.wait`` / ``warmup`` / ``active`` steps; the run stops after.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function, schedule

from pyg_mpnn.atomic import atomic_write_text
from pyg_mpnn.train.config import ProfileConfig

PHASES = ("data_wait", "h2d", "forward", "backward", "optimizer", "tracking")


class PhaseTimer:
    """Seconds spent in each phase of a training step (:data:`PHASES`).

    ``with timer("forward"): ...`` is one ``torch.profiler.record_function`` range (named in the
    profiler's trace) and adds its wall time to the step's phase; a phase may be entered several
    times a step (one forward per micro-batch). :meth:`start` opens a step, :meth:`finish`
    closes it into :attr:`history` (the last 500 to 1,000 steps, for :func:`breakdown`).

    Args:
        device (torch.device): the training device.
        sync (bool, optional): wait for the GPU at the end of every phase, so that its
            asynchronous work is billed to the phase that queued it (profiling only).
            (default: :obj:`False`)
    """

    def __init__(self, device: torch.device, sync: bool = False):
        self.device, self.sync = device, sync
        self.history: list[dict] = []
        self.start(0.0)

    def start(self, data_wait: float) -> None:
        """Open a step whose batches took ``data_wait`` seconds to arrive (already passed)."""
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.seconds["data_wait"] = data_wait
        self._t0 = time.perf_counter() - data_wait

    @contextmanager
    def __call__(self, phase: str):
        t = time.perf_counter()
        with record_function(phase):
            yield
        if self.sync:
            torch.cuda.synchronize(self.device)
        self.seconds[phase] += time.perf_counter() - t

    def elapsed(self) -> float:
        """Seconds since the step started, its data wait included."""
        return time.perf_counter() - self._t0

    def finish(self, **info) -> dict:
        """Close the step: its phases, ``total`` seconds and ``info`` go to :attr:`history`."""
        record = {**self.seconds, **info, "total": self.elapsed()}
        self.history.append(record)
        if len(self.history) > 1000:
            del self.history[:500]
        return record


def breakdown(step_times: list[dict]) -> dict:
    """Mean seconds per phase over ``step_times`` and each phase's share of the step."""
    n = max(len(step_times), 1)
    mean = {k: sum(s[k] for s in step_times) / n for k in PHASES}
    total = sum(s["total"] for s in step_times) / n
    res = sum(s["residues"] for s in step_times) / n
    out = {
        "steps": len(step_times),
        "step_s": total,
        "residues_per_step": res,
        "residues_per_s": res / total if total else float("nan"),
        "phases_s": mean,
        "phases_frac": {k: (v / total if total else 0.0) for k, v in mean.items()},
    }
    out["other_s"] = max(total - sum(mean.values()), 0.0)
    return out


def format_breakdown(b: dict) -> str:
    lines = [
        f"step-time breakdown over {b['steps']} steps: {b['step_s']:.3f} s/step, "
        f"{b['residues_per_s']:.0f} residues/s"
    ]
    for k in PHASES:
        lines.append(f"  {k:<10} {b['phases_s'][k]:8.4f} s  {100 * b['phases_frac'][k]:5.1f} %")
    lines.append(f"  {'other':<10} {b['other_s']:8.4f} s")
    return "\n".join(lines)


class StepProfiler:
    def __init__(self, run_dir: Path, cfg: ProfileConfig, device: torch.device, tracker):
        self.dir = Path(run_dir) / "profile"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.wait, self.warmup, self.active = cfg.wait, cfg.warmup, cfg.active
        self.tracker = tracker
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        self.cuda = device.type == "cuda"
        self.prof = profile(
            activities=acts,
            record_shapes=True,
            schedule=schedule(wait=self.wait, warmup=self.warmup, active=self.active, repeat=1),
            on_trace_ready=self._ready,
        )
        self.count = 0
        self.first_step = None
        self.table = ""

    def _ready(self, prof) -> None:
        prof.export_chrome_trace(str(self.dir / "trace.json"))
        ka = prof.key_averages()
        table = ka.table(sort_by="self_cpu_time_total", row_limit=40)
        if self.cuda:
            table += "\n\n" + ka.table(sort_by="self_cuda_time_total", row_limit=40)
        self.table = table
        atomic_write_text(self.dir / "key_averages.txt", table)

    def start(self) -> None:
        self.prof.__enter__()

    def step(self) -> None:
        self.prof.step()
        self.count += 1

    def done(self, step: int) -> bool:
        return self.count >= self.wait + self.warmup + self.active

    def finish(self, trainer) -> dict:
        self.prof.__exit__(None, None, None)
        active = trainer.step_times[-self.active :]
        b = breakdown(active)
        atomic_write_text(self.dir / "breakdown.json", json.dumps(b, indent=1))
        text = format_breakdown(b)
        print(text, file=sys.stderr)
        print(f"profile: {self.dir}/trace.json, key_averages.txt, breakdown.json", file=sys.stderr)
        self.tracker.set("profile", b)
        self.tracker.text(self.table, "profile_key_averages")
        self.tracker.text(text, "profile_breakdown")
        return b
