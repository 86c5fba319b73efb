"""The process heap of a long run: glibc malloc's statistics and a bounded release policy.

Padding-free batches change the node and edge counts at every step, so every activation tensor
has a new size. glibc serves blocks up to its mmap threshold (which rises to 32 MiB after the
first large free) from its heap, and a heap whose holes never fit the next step's sizes keeps
growing: on ``base_cpu30`` it held ~4 GB of *free* memory after 200 steps beside ~0.2 GB in use
(docs/reliability.md). Returning that memory every step costs page faults on every reuse;
returning it every few steps costs one refault of the working set per interval and bounds the
resident size. ``HeapRelease`` does the latter; on a C library without ``malloc_trim`` it is a
no-op and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass

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
    """The C library when it is glibc with ``malloc_trim`` and ``mallinfo2`` (2.33+), else None."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        lib.malloc_trim.argtypes = [ctypes.c_size_t]
        lib.malloc_trim.restype = ctypes.c_int
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


def heap_stats() -> HeapStats:
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


def release() -> bool:
    """Give the arenas' free pages back to the system (``malloc_trim(0)``); False if unsupported."""
    if _LIBC is None:
        return False
    _LIBC.malloc_trim(0)
    return True


class HeapRelease:
    """Release malloc's free pages every ``every`` optimizer steps (0: never).

    Args:
        every (int): the interval in optimizer steps (``train.heap_release_every``).

    The first step that calls :meth:`step` after an interval has passed pays for it: the trim
    itself (milliseconds) and, during the next step, one page fault per reused free page.
    """

    def __init__(self, every: int):
        self.every = every if _LIBC is not None else 0
        self.supported = _LIBC is not None
        self.releases = 0

    def describe(self) -> str:
        if not self.supported:
            return "heap release: off (the C library has no malloc_trim)"
        if not self.every:
            return "heap release: off (train.heap_release_every: 0)"
        return f"heap release: malloc_trim every {self.every} steps (train.heap_release_every)"

    def step(self, step: int) -> None:
        if self.every and step % self.every == 0:
            release()
            self.releases += 1
