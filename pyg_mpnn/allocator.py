"""The memory allocator of a training process: jemalloc when it is installed.

Padding-free batches give every step new tensor sizes. glibc's malloc serves those of up to
32 MiB from a heap whose holes rarely fit the next step's sizes, so the heap grows for the
first few hundred steps and keeps ~4 GB of *free* memory beside a 1 GB step
(docs/reliability.md). jemalloc serves each size from a size class, so freed blocks are reused
by the next step whatever its shapes; kept (not returned to the system, ``dirty_decay_ms:-1``),
they cost no page faults either. Kept pages are not merged, though: jemalloc joins neighbouring
free extents only when it returns them, so with decay off a run whose sizes keep changing (a
fine-tune's batches and validation sets) carves ever new extents and grows by several MB a step.
:func:`release_free_memory` purges them (``arena.<all>.purge``): the trainer calls it every
``train.release_memory_every`` steps and after each validation, so memory held free stays
within a few steps' worth, and the next step pays its page faults once.

A library cannot swap its process's allocator once it runs, so the training command does it
at start: :func:`use_jemalloc` re-executes the same command with jemalloc preloaded
(``LD_PRELOAD``) before anything is imported. ``PYG_MPNN_ALLOCATOR`` chooses:

* ``auto`` (default): jemalloc when found (:data:`SEARCH`), else the C library's malloc;
* ``jemalloc``: jemalloc, or an error naming what to install;
* ``system``: the C library's malloc, unchanged.

:func:`heap_stats` and :func:`rss_bytes` tell what the process holds: glibc's ``mallinfo2``
tells memory in use by live blocks from memory its heap keeps free, which is how the
measurements of docs/reliability.md tell a leak (in use grows) from an allocator that keeps
what it was given (free grows). Under jemalloc or another C library the heap statistics are
those of glibc's unused malloc (zeros).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pyg_mpnn.errors import UserError

ENV = "PYG_MPNN_ALLOCATOR"
MALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1,background_thread:false"
SEARCH = (  # where distributions put it (Debian/Ubuntu's libjemalloc2, Fedora, Homebrew, conda)
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
    "/usr/lib/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so.2",
    "/opt/homebrew/lib/libjemalloc.2.dylib",
)


class AllocatorError(UserError):
    """``PYG_MPNN_ALLOCATOR=jemalloc`` and no jemalloc: what to install."""


def find_jemalloc() -> str | None:
    prefix = os.environ.get("CONDA_PREFIX")
    candidates = [*SEARCH, *([f"{prefix}/lib/libjemalloc.so.2"] if prefix else [])]
    for path in candidates:
        if Path(path).is_file():
            return path
    name = ctypes.util.find_library("jemalloc")
    return name if name and Path(name).is_absolute() else None


def active() -> str:
    """``"jemalloc"`` when this process runs on jemalloc, else ``"system"``."""
    try:
        with open("/proc/self/maps") as f:
            return "jemalloc" if "libjemalloc" in f.read() else "system"
    except OSError:
        return "system"


def use_jemalloc(argv: list[str] | None = None) -> None:
    """Re-execute this process (same interpreter, same arguments) with jemalloc preloaded,
    when ``PYG_MPNN_ALLOCATOR`` asks for it and it is not loaded yet; returns otherwise."""
    choice = os.environ.get(ENV, "auto")
    if choice not in ("auto", "jemalloc", "system"):
        raise AllocatorError(f"{ENV}={choice!r}: use auto, jemalloc or system")
    if choice == "system" or active() == "jemalloc" or os.environ.get("_PYG_MPNN_REEXEC"):
        return
    lib = find_jemalloc()
    if lib is None:
        if choice == "jemalloc":
            raise AllocatorError(
                f"{ENV}=jemalloc: no libjemalloc found (install it, e.g. apt install "
                "libjemalloc2, brew install jemalloc or conda install jemalloc)"
            )
        return
    env = dict(os.environ, _PYG_MPNN_REEXEC="1")
    env["LD_PRELOAD"] = ":".join(p for p in (lib, env.get("LD_PRELOAD", "")) if p)
    env.setdefault("MALLOC_CONF", MALLOC_CONF)
    args = sys.orig_argv if argv is None else [sys.executable, *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, args, env)


def describe() -> str:
    """One line for a run's log: the allocator and why."""
    name = active()
    if name == "jemalloc":
        return f"allocator: jemalloc ({os.environ.get('MALLOC_CONF', 'its defaults')})"
    if os.environ.get(ENV) == "system":
        why = f"{ENV}=system"
    elif find_jemalloc() is None:
        why = "no libjemalloc found: memory grows with variable batch sizes, docs/reliability.md"
    else:  # a library user's process: only the command lines re-execute themselves
        why = (
            "not started by python -m pyg_mpnn.train; preload libjemalloc for long runs, "
            "docs/reliability.md"
        )
    return f"allocator: the C library's malloc ({why})"


# -- what the process holds ------------------------------------------------------------
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",  # bytes taken from the system by sbrk (every arena)
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",  # bytes in mmapped blocks
            "usmblks",
            "fsmblks",
            "uordblks",  # bytes in use in the arenas
            "fordblks",  # bytes free in the arenas (resident or not)
            "keepcost",
        )
    ]


def _libc():
    """The C library when it has ``mallinfo2`` (glibc 2.33+), else None."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        lib.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return None
    return lib


_LIBC = _libc()


@dataclass(frozen=True)
class HeapStats:
    """malloc's view of the heap, in bytes (zeros where the C library does not report it)."""

    in_use: int  # allocated blocks in the arenas
    free: int  # free blocks held by the arenas
    mmapped: int  # blocks served by mmap (returned to the system when freed)


_ARENAS_ALL = 4096  # jemalloc's MALLCTL_ARENAS_ALL: every arena at once


def _mallctl():
    """The preloaded jemalloc's ``mallctl`` (unprefixed), or None."""
    try:
        return ctypes.CDLL(None).mallctl
    except (OSError, AttributeError):
        return None


def _jemalloc_stat(name: str) -> int:
    """One of jemalloc's ``stats.*`` counters (bytes), after refreshing them; 0 if unreadable."""
    mallctl = _mallctl()
    if mallctl is None:
        return 0
    epoch, value = ctypes.c_uint64(1), ctypes.c_size_t(0)
    size = ctypes.c_size_t(ctypes.sizeof(epoch))
    mallctl(b"epoch", None, None, ctypes.byref(epoch), size)
    size = ctypes.c_size_t(ctypes.sizeof(value))
    if mallctl(name.encode(), ctypes.byref(value), ctypes.byref(size), None, 0):
        return 0
    return value.value


def release_free_memory() -> bool:
    """Return jemalloc's free pages to the system (merging its free extents on the way);
    True if it did. A no-op (False) on other allocators: glibc's holes are split by live
    blocks, which no trim merges (docs/reliability.md)."""
    mallctl = _mallctl() if active() == "jemalloc" else None
    if mallctl is None:
        return False
    return mallctl(f"arena.{_ARENAS_ALL}.purge".encode(), None, None, None, 0) == 0


class Releaser:
    """When a training run returns free memory (``train.release_memory_every``): after each
    validation, every ``every`` optimizer steps and at each epoch's end, once a step at most;
    never with ``every`` 0."""

    def __init__(self, every: int):
        self.every, self.last = every, -1

    def __call__(self, step: int, validated: bool = True) -> None:
        due = validated or (self.every and step % self.every == 0)
        if self.every and due and step != self.last:
            self.last = step
            release_free_memory()


def heap_stats() -> HeapStats:
    """glibc's ``mallinfo2``; on jemalloc, its ``stats.allocated`` as in use and
    ``stats.resident - stats.allocated`` as free (pages it holds for reuse)."""
    if active() == "jemalloc":
        allocated = _jemalloc_stat("stats.allocated")
        resident = _jemalloc_stat("stats.resident")
        return HeapStats(in_use=allocated, free=max(resident - allocated, 0), mmapped=0)
    if _LIBC is None:
        return HeapStats(0, 0, 0)
    m = _LIBC.mallinfo2()
    return HeapStats(in_use=m.uordblks, free=m.fordblks, mmapped=m.hblkhd)


def rss_bytes() -> int:
    """The process's resident set size (``/proc/self/statm``; 0 where there is no procfs)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return 0
