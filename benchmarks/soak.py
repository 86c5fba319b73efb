"""Memory over a long run: resident and unique memory of the training process and its loader
workers, step by step, for one or more variants of an experiment.

    python -m benchmarks.soak --json --minutes 30 --exp base_cpu30 --variants bf16,fp32 \\
        --out benchmarks/results/soak_base_cpu30.json

Each variant trains in a child process (``python -m benchmarks.soak --child``) that writes one
line per optimizer step: the step, the time, its resident set size (RSS) and malloc's in-use and
free bytes. The parent samples the RSS and USS (memory unique to a process, from
``/proc/PID/smaps``) of the child and of every worker below it every ``--every`` seconds.

Reported per variant: steps, peak RSS and USS, RSS at the end of warm-up (the larger of 10 % of
the steps and 200 steps, at most half the run), the slope after warm-up (MB per 1,000 steps, a
least-squares fit of RSS on step), and the working set the run needs (runtime baseline after
imports + parameters, gradients and Adam state + the dataset + the largest batch's saved
activations). A PNG draws RSS against step for every variant.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

MB = 1e6

# name -> (environment, config overrides); combine with "+", e.g. fp32+workers2
VARIANTS: dict[str, tuple[dict[str, str], list[str]]] = {
    "default": ({}, []),
    "bf16": ({}, ["train.precision=bf16"]),
    "fp32": ({}, ["train.precision=fp32"]),
    "system": ({"PYG_MPNN_ALLOCATOR": "system"}, []),  # glibc's malloc, as before the fix
    "jemalloc_decay": ({"MALLOC_CONF": "dirty_decay_ms:10000,muzzy_decay_ms:10000"}, []),
    "decay1s": ({"MALLOC_CONF": "dirty_decay_ms:1000,muzzy_decay_ms:0"}, []),
    "keep_free": ({}, ["train.release_memory_every=0"]),  # jemalloc keeps its free pages
    "buckets32": ({}, ["train.shape_buckets=32"]),
    "onednn0": ({"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0"}, []),
    "onednn1024": ({"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024"}, []),
    "onednn8192": ({"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "8192"}, []),
    "workers2": ({}, ["data.num_workers=2"]),
    "track_off": ({}, ["track.aim=false", "track.layer_every=0"]),
    "track_on": ({}, ["track.aim=true"]),
    "aim_only": ({}, ["track.aim=true", "track.layer_every=0"]),  # Aim's run, no layer norms
    "layers_only": ({}, ["track.aim=false"]),  # layer norms to the CSV files, no Aim
    "arena1": ({"MALLOC_ARENA_MAX": "1"}, []),
    "arena2": ({"MALLOC_ARENA_MAX": "2"}, []),
    "mmap64k": ({"MALLOC_MMAP_THRESHOLD_": "65536"}, []),
    "fixed": ({"SOAK_FIXED_BATCH": "1"}, []),  # the first batch again and again: fixed shapes
    "pyobjects": ({"SOAK_TRACEMALLOC": "1"}, []),  # Python objects' memory, from tracemalloc
    "novalid": ({}, ["train.valid_every_steps=null"]),
    "nockpt": ({}, ["checkpoint.every_steps=null"]),
}


class RepeatedBatch:
    """A loader's first batch, as many times as the loader has batches (fixed shapes)."""

    def __init__(self, loader):
        self.loader, self.batch = loader, None

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        if self.batch is None:
            self.batch = next(iter(self.loader))
        for _ in range(len(self.loader)):
            yield self.batch


def variant(spec: str) -> tuple[dict[str, str], list[str]]:
    env, sets = {}, []
    for part in spec.split("+"):
        if part not in VARIANTS:
            raise SystemExit(f"error: unknown variant {part!r} (known: {', '.join(VARIANTS)})")
        e, s = VARIANTS[part]
        env.update(e)
        sets += s
    return env, sets


# -- the child: one training run, a line per step --------------------------------------------
def child(a: argparse.Namespace) -> None:
    from pyg_mpnn.allocator import use_jemalloc

    use_jemalloc()  # as python -m pyg_mpnn.train does (PYG_MPNN_ALLOCATOR)
    from pyg_mpnn import allocator as heap
    from pyg_mpnn.nn.recompute import count_saved
    from pyg_mpnn.train.config import load_experiment
    from pyg_mpnn.train.trainer import Trainer

    if os.environ.get("SOAK_TRACEMALLOC"):
        tracemalloc.start()
    baseline = heap.rss_bytes()
    sets = [*a.set, f"train.max_minutes={a.minutes}", "train.progress=false"]
    if a.steps:
        sets.append(f"train.max_steps={a.steps}")
    if a.data:
        sets.append(f"data.path={a.data}")
    cfg = load_experiment(a.exp, sets)
    samples = open(a.samples, "a", buffering=1)

    class SampledTrainer(Trainer):
        def on_step(self, micro: list) -> None:
            h = heap.heap_stats()
            use = resource.getrusage(resource.RUSAGE_SELF)
            row = dict(step=self.step, t=round(time.time() - t0, 3), rss=heap.rss_bytes())
            row["cpu_s"] = round(use.ru_utime + use.ru_stime, 3)  # all threads: a load-proof cost
            row["python"] = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
            samples.write(json.dumps({**row, "heap_in_use": h.in_use, "heap_free": h.free}) + "\n")

    trainer = SampledTrainer(cfg, a.run)
    if os.environ.get("SOAK_FIXED_BATCH"):
        trainer.data.train_loader = RepeatedBatch(trainer.data.train_loader)
    t0 = time.time()
    params = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    batch = next(iter(trainer.data.train_loader))
    with count_saved() as saved:
        trainer.model.train()
        trainer.model(batch).sum().backward()
    trainer.model.zero_grad(set_to_none=True)
    per_residue = saved.bytes / batch.num_nodes
    working = dict(
        baseline_mb=baseline / MB,
        params_and_adam_mb=4 * params / MB,  # weights, gradients, Adam's two moments
        data_mb=sum(f.stat().st_size for f in Path(trainer.data.root).rglob("*") if f.is_file())
        / MB,
        activations_mb=per_residue * cfg.data.max_tokens * cfg.optim.accumulate / MB,
    )
    samples.write(json.dumps({"working_set": working}) + "\n")
    trainer.fit()


# -- the parent: run the variants, sample memory ----------------------------------------------
def _sample(pid: int) -> dict | None:
    import psutil

    try:
        p = psutil.Process(pid)
        m = p.memory_full_info()
        kids = []
        for c in p.children(recursive=True):
            try:
                k = c.memory_full_info()
                kids.append({"pid": c.pid, "rss": k.rss, "uss": k.uss})
            except psutil.Error:
                pass
        return {"t": time.time(), "rss": m.rss, "uss": m.uss, "workers": kids}
    except psutil.Error:
        return None


def run_variant(name: str, a: argparse.Namespace, folder: Path) -> dict:
    env, sets = variant(name)
    samples, run = folder / f"{name}.jsonl", folder / name
    cmd = [sys.executable, "-m", "benchmarks.soak", "--child", "--exp", a.exp]
    cmd += ["--minutes", str(a.minutes), "--samples", str(samples), "--run", str(run)]
    cmd += ["--steps", str(a.steps)] if a.steps else []
    cmd += ["--data", a.data] if a.data else []
    for s in [*a.set, *sets, *([f"train.threads={a.threads}"] if a.threads else [])]:
        cmd += ["--set", s]
    t0, polled = time.time(), []
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        s = _sample(proc.pid)
        if s:
            polled.append({**s, "t": round(s["t"] - t0, 1)})
        time.sleep(a.every)
    err = proc.stderr.read()
    if proc.returncode:
        raise SystemExit(f"error: variant {name} failed ({proc.returncode}):\n{err[-2000:]}")
    return summarise(name, env, sets, samples, polled)


def summarise(name, env, sets, samples: Path, polled: list[dict]) -> dict:
    import numpy as np

    rows, working = [], {}
    for line in samples.read_text().splitlines():
        r = json.loads(line)
        working = r.get("working_set", working)
        if "step" in r:
            rows.append(r)
    steps = np.array([r["step"] for r in rows])
    rss = np.array([r["rss"] for r in rows]) / MB
    n = len(rows)
    warm = min(max(200, n // 10), n // 2)
    slope = float(np.polyfit(steps[warm:], rss[warm:], 1)[0] * 1000) if n - warm >= 10 else None
    cpu = np.array([r["cpu_s"] for r in rows])
    cpu_per_step = (
        float((cpu[-1] - cpu[warm]) / (steps[-1] - steps[warm])) if n - warm >= 2 else None
    )
    t = np.array([r["t"] for r in rows])
    wall_per_step = float((t[-1] - t[warm]) / (steps[-1] - steps[warm])) if n - warm >= 2 else None
    peak_workers = max((w["uss"] for s in polled for w in s["workers"]), default=0) / MB
    return {
        "variant": name,
        "env": env,
        "overrides": sets,
        "steps": int(steps[-1]) if n else 0,
        "seconds": rows[-1]["t"] if n else 0,
        "peak_rss_mb": round(max([*rss, *(s["rss"] / MB for s in polled)], default=0), 1),
        "peak_uss_mb": round(max((s["uss"] for s in polled), default=0) / MB, 1),
        "peak_worker_uss_mb": round(peak_workers, 1),
        "workers": max((len(s["workers"]) for s in polled), default=0),
        "warmup_steps": int(steps[warm]) if n else 0,
        "rss_end_of_warmup_mb": round(float(rss[warm]), 1) if n else None,
        "slope_mb_per_1000_steps": None if slope is None else round(slope, 1),
        "cpu_s_per_step": None if cpu_per_step is None else round(cpu_per_step, 3),
        "wall_s_per_step": None if wall_per_step is None else round(wall_per_step, 3),
        "working_set_mb": {k: round(v, 1) for k, v in working.items()},
        "working_set_total_mb": round(sum(working.values()), 1),
        "per_step": [
            [
                r["step"],
                round(r["rss"] / MB, 1),
                round(r["heap_in_use"] / MB, 1),
                round(r["heap_free"] / MB, 1),
                round(r.get("python", 0) / MB, 1),
            ]
            for r in rows
        ],
        "per_step_columns": ["step", "rss_mb", "heap_in_use_mb", "heap_free_mb", "python_mb"],
        "sampled": [
            [
                s["t"],
                round(s["rss"] / MB, 1),
                round(s["uss"] / MB, 1),
                [round(w["uss"] / MB, 1) for w in s["workers"]],
            ]
            for s in polled
        ],
        "sampled_columns": ["t_s", "rss_mb", "uss_mb", "worker_uss_mb"],
    }


def figure(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        rows = r["per_step"]
        ax.plot([x[0] for x in rows], [x[1] / 1000 for x in rows], label=r["variant"])
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("resident memory (GB)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--exp", default="base_cpu30")
    ap.add_argument("--data", default="embedded", help="data.path (default: embedded)")
    ap.add_argument("--minutes", type=float, default=30.0, help="per variant")
    ap.add_argument("--steps", type=int, default=None, help="also stop after this many steps")
    ap.add_argument("--variants", default="default", help=f"comma list of {', '.join(VARIANTS)}")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--threads", type=int, default=None, help="train.threads of every variant")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", help="results JSON (default: stdout)")
    ap.add_argument("--png", help="figure (default: --out with .png)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--samples", help=argparse.SUPPRESS)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> dict | None:
    a = parse_args(argv)
    if a.child:
        return child(a)
    from benchmarks.common import command, emit, finished, machine

    info = machine()
    results = []
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        for name in a.variants.split(","):
            results.append(run_variant(name, a, Path(tmp)))
            print(
                f"{name}: {results[-1]['steps']} steps, peak RSS "
                f"{results[-1]['peak_rss_mb']:.0f} MB, slope "
                f"{results[-1]['slope_mb_per_1000_steps']} MB/1000 steps",
                file=sys.stderr,
            )
    out = {
        "command": command("benchmarks.soak", argv),
        "machine": finished(info),
        "exp": a.exp,
        "data": a.data,
        "minutes": a.minutes,
        "results": results,
    }
    png = a.png or (str(Path(a.out).with_suffix(".png")) if a.out else None)
    if png:
        figure(results, Path(png))
        out["figure"] = png
    emit(out, a)
    return out


if __name__ == "__main__":
    main()
