"""``auto`` values of ``train.threads``, ``train.recompute_activations`` and ``train.compile``.

Each choice is a pure function of a few facts about the machine (:class:`Facts`: device, free
memory, the CPUs this process may use) and the run (the batch size, the model's size, its
length), and returns a :class:`Choice`: the value and one line saying why, which the trainer
logs at start, e.g. ``train.recompute_activations: auto -> false (keep-all needs ~0.6 GB of
20 GB free)``. :func:`machine_facts` reads the facts of this machine; the tests feed made-up
ones.

* ``threads``: one thread per physical core this process may run on (``sched_getaffinity``,
  hyper-threads counted once), within a cgroup CPU quota, at most :data:`MAX_THREADS`, divided
  among the training processes of the node; an explicit ``OMP_NUM_THREADS`` wins.
* ``recompute_activations``: on a GPU or a CPU with AMX, keep every activation (the faster
  step there) when a ``data.max_tokens`` batch keeps them in well under the free memory, else
  recompute (about half the activation memory, exact). On a CPU without AMX recompute: it was
  the faster step there (1.08-1.11x on an AVX2-only AMD EPYC; docs/performance.md, per CPU).
* ``compile``: ``torch.compile`` on a GPU where inductor works, the run is long enough to repay
  the compilation, and its memory (it keeps what it chooses, about as much as keep-all) fits;
  never on a CPU (minutes of compiling and 1.8x the memory for 1.2-1.5x the speed).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

# Peak MiB per residue of a training step at the base model's size (hidden 128, 3 + 3 layers,
# k 48, fp32), measured at 5,000 residues (benchmarks/results/memory_recompute_cpu.json: keep_all
# 5,825 MiB, plain 3,009 MiB).
KEEP_ALL_MIB_PER_RESIDUE = 1.165
RECOMPUTE_MIB_PER_RESIDUE = 0.60
# bf16 autocast keeps about 0.57x the fp32 step's memory (train_step_compile_5k.json: ours_bf16
# 1,850 MiB against ours 3,228 MiB at 5,196 residues)
BF16_MEMORY_FACTOR = 0.6
COMFORT = 0.5  # a choice may use at most this share of the free memory
MAX_THREADS = 32  # beyond this the small per-edge operators stop scaling
MIN_COMPILE_STEPS = 200  # compiling takes tens of seconds on a GPU (Triton)
MIN_COMPILE_MINUTES = 10.0


@dataclass(frozen=True)
class Facts:
    """What the ``auto`` choices depend on.

    Args:
        device (str): the training device's type, ``cpu`` or ``cuda``.
        free_mib (float, optional): free memory of that device in MiB (None: unknown).
        affinity (tuple of int): the logical CPUs this process may run on.
        core_of (dict): logical CPU -> its physical core (any hashable key, e.g.
            ``(package, core_id)``); CPUs missing here count as cores of their own.
        cpu_quota (float, optional): a cgroup CPU limit, in CPUs (None: none).
        omp_threads (int, optional): ``OMP_NUM_THREADS`` when set.
        local_processes (int): training processes on this node (``LOCAL_WORLD_SIZE``).
        cpu_amx (bool): the CPU has AMX tiles (``amx_tile`` in ``/proc/cpuinfo``).
    """

    device: str
    free_mib: float | None
    affinity: tuple[int, ...] = ()
    core_of: dict = field(default_factory=dict)
    cpu_quota: float | None = None
    omp_threads: int | None = None
    local_processes: int = 1
    cpu_amx: bool = False


@dataclass(frozen=True)
class Choice:
    """An ``auto`` setting resolved: ``key``, the ``value`` chosen and ``reason``."""

    key: str
    value: object
    reason: str

    def line(self) -> str:
        v = str(self.value).lower() if isinstance(self.value, bool) else self.value
        return f"{self.key}: auto -> {v} ({self.reason})"


def _gb(mib: float) -> str:
    gb = mib / 1024
    if gb < 1:
        return f"{mib:.0f} MB"
    return f"{gb:.1f} GB" if gb < 10 else f"{gb:.0f} GB"


# -- the choices (pure) -------------------------------------------------------------------------
def physical_cores(affinity: tuple[int, ...], core_of: dict) -> int:
    """Distinct physical cores among the logical CPUs ``affinity``."""
    return len({core_of.get(cpu, ("cpu", cpu)) for cpu in affinity})


def choose_threads(facts: Facts) -> Choice:
    key = "train.threads"
    if facts.omp_threads:
        return Choice(key, facts.omp_threads, f"OMP_NUM_THREADS={facts.omp_threads}")
    cores = physical_cores(facts.affinity, facts.core_of) or 1
    n, why = cores, [f"{cores} physical cores of {len(facts.affinity)} CPUs available"]
    if facts.cpu_quota is not None and math.ceil(facts.cpu_quota) < n:
        n = max(math.ceil(facts.cpu_quota), 1)
        why.append(f"cgroup quota {facts.cpu_quota:g} CPUs")
    if n > MAX_THREADS:
        n = MAX_THREADS
        why.append(f"capped at {MAX_THREADS}")
    if facts.local_processes > 1:
        n = max(n // facts.local_processes, 1)
        why.append(f"shared by {facts.local_processes} processes")
    return Choice(key, n, ", ".join(why))


def step_memory_mib(
    residues: int, hidden_dim: int, k: int, layers: int, keep_all: bool, precision: str
) -> float:
    """Estimated peak memory of a training step of ``residues`` (MiB): the measured base-size
    figure per residue, scaled with the per-edge width (``hidden_dim x k``) and the depth."""
    per = KEEP_ALL_MIB_PER_RESIDUE if keep_all else RECOMPUTE_MIB_PER_RESIDUE
    scale = (hidden_dim * k) / (128 * 48) * layers / 6
    return residues * per * scale * (BF16_MEMORY_FACTOR if precision == "bf16" else 1.0)


def choose_recompute(facts: Facts, keep_all_mib: float) -> Choice:
    """Recompute on a CPU without AMX; elsewhere keep everything when ``keep_all_mib`` fits in
    :data:`COMFORT` of the free memory."""
    key = "train.recompute_activations"
    if facts.device == "cpu" and not facts.cpu_amx:
        return Choice(key, True, "a CPU without AMX, where recomputing is the faster step")
    if facts.free_mib is None:
        return Choice(key, True, "free memory unknown: recompute, the smaller step")
    need, free = _gb(keep_all_mib), _gb(facts.free_mib)
    if keep_all_mib <= COMFORT * facts.free_mib:
        return Choice(key, False, f"keep-all needs ~{need} of {free} free")
    return Choice(key, True, f"keep-all would need ~{need} of {free} free: recompute")


def choose_compile(
    facts: Facts,
    keep_all_mib: float,
    steps: int | None,
    minutes: float | None,
    inductor_error=None,
) -> Choice:
    """``torch.compile`` for a run of ``steps`` optimizer steps (None: unbounded) capped at
    ``minutes`` (None: none), when inductor works on the device (``inductor_error()``: None,
    or why not; only called when everything else says yes) and keep-all memory fits."""
    key, dev = "train.compile", facts.device
    if dev != "cuda":
        # 1.2-1.5x the step's speed at 1.8x its memory after 20-110 s of compiling per batch
        # shape family, and inductor's own random streams (train_step_compile_5k.json,
        # train_step_recompute_compile_2k.json): worth it only for a run known to be long
        return Choice(key, False, f"{dev}: compiling costs minutes and 1.8x the memory")
    if steps is not None and steps < MIN_COMPILE_STEPS:
        return Choice(key, False, f"{steps} steps: too few to repay compiling")
    if minutes is not None and minutes < MIN_COMPILE_MINUTES:
        return Choice(key, False, f"{minutes:g} minutes: too short to repay compiling")
    if facts.free_mib is None or keep_all_mib > COMFORT * facts.free_mib:
        free = "unknown" if facts.free_mib is None else _gb(facts.free_mib)
        return Choice(key, False, f"its memory (~{_gb(keep_all_mib)}) does not fit ({free} free)")
    error = inductor_error() if inductor_error is not None else None
    if error is not None:
        return Choice(key, False, f"inductor does not work here ({error})")
    return Choice(key, True, f"{dev}, {steps or 'unbounded'} steps, ~{_gb(keep_all_mib)} fits")


# -- the facts of this machine ----------------------------------------------------------------
def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def _core_map(affinity: tuple[int, ...]) -> dict:
    out = {}
    for cpu in affinity:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
        package, core = _read(base + "physical_package_id"), _read(base + "core_id")
        if core is not None:
            out[cpu] = (package, core)
    return out


def _cgroup_cpus() -> float | None:
    v2 = _read("/sys/fs/cgroup/cpu.max")  # "max 100000" or "200000 100000"
    if v2 and not v2.startswith("max"):
        quota, period = v2.split()[:2]
        return int(quota) / int(period)
    quota, period = (
        _read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
        _read("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    )
    if quota and period and int(quota) > 0:
        return int(quota) / int(period)
    return None


def _cgroup_free_mib() -> float | None:
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        lim, use = _read(limit), _read(usage)
        if lim and use and lim.isdigit() and int(lim) < 2**60:
            return (int(lim) - int(use)) / 2**20
    return None


def _cpu_free_mib() -> float | None:
    free = None
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemAvailable:"):
            free = int(line.split()[1]) / 1024
    cgroup = _cgroup_free_mib()
    return min(x for x in (free, cgroup) if x is not None) if free or cgroup else None


def machine_facts(device: torch.device) -> Facts:
    """The :class:`Facts` of this process on ``device``."""
    try:
        affinity = tuple(sorted(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        affinity = tuple(range(os.cpu_count() or 1))
    if device.type == "cuda":
        free_mib = torch.cuda.mem_get_info(device)[0] / 2**20
    else:
        free_mib = _cpu_free_mib()
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return Facts(
        device=device.type,
        free_mib=free_mib,
        affinity=affinity,
        core_of=_core_map(affinity),
        cpu_quota=_cgroup_cpus(),
        omp_threads=int(omp) if omp.isdigit() and int(omp) > 0 else None,
        local_processes=int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1),
        cpu_amx="amx_tile" in cpu_flags(),
    )


# -- a run's settings ---------------------------------------------------------------------------
def resolve_threads(value, facts_of) -> tuple[int | None, Choice | None]:
    """``train.threads``: itself, or (``auto``) :func:`choose_threads` of ``facts_of()``."""
    if value != "auto":
        return value, None
    choice = choose_threads(facts_of())
    return choice.value, choice


def resolve_model(cfg, precision: str, steps: int | None, facts_of, inductor_error):
    """``(recompute_activations, compile, [Choice, ...])`` of config ``cfg``: the values it
    sets, or for ``auto`` the choices of :func:`choose_recompute` and :func:`choose_compile`
    for a ``data.max_tokens`` batch of its model in ``precision``."""
    t, m = cfg.train, cfg.model
    if t.max_residues is not None:  # a residue budget bounds the steps too
        steps = min(steps or t.max_residues, -(-t.max_residues // cfg.data.max_tokens))
    keep_all = step_memory_mib(
        cfg.data.max_tokens,
        m.hidden_dim,
        m.k_neighbors,
        m.num_encoder_layers + m.num_decoder_layers,
        keep_all=True,
        precision=precision,
    )
    recompute, compiled, choices = t.recompute_activations, t.compile, []
    if "auto" in (recompute, compiled):
        facts = facts_of()
        if compiled == "auto":
            choices.append(choose_compile(facts, keep_all, steps, t.max_minutes, inductor_error))
            compiled = choices[-1].value
        if recompute == "auto":
            choices.append(choose_recompute(facts, keep_all))
            recompute = choices[-1].value
    return recompute, compiled, choices
