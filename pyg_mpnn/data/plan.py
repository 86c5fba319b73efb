"""Epoch plans in blocks, planned ahead in a background thread.

At AlphaFold-DB size (214M index rows, up to 52M clusters) one epoch's plan takes a minute
of sorting and packing, and its temporaries alone would pass a gigabyte. So
:class:`~pyg_mpnn.data.sampler.TokenBudgetBatchSampler` plans an epoch in **blocks**:

* the index rows are cut once into **chunks** of about ``chunk_rows`` rows, at cluster
  starts (:func:`cluster_chunks`, one streaming pass over the memory-mapped cluster column;
  format 2 folders keep a cluster's rows contiguous);
* each epoch shuffles the chunks and groups them into blocks; a block is planned on its own
  (member draw, length sort, packing, batch shuffle, split evenly across ranks) from its rows
  only, so the first batch waits for one block, not the epoch;
* :class:`EpochPlan` plans the blocks in order in a thread and keeps only this rank's
  batches (compact ``uint32`` row numbers): per rank, O(clusters / ranks) for the plan,
  O(block) for the temporaries. The sampler starts the next epoch's plan as soon as the
  current one is complete, so no epoch boundary waits for a plan.

A block's batches depend only on ``(seed, epoch, block)``, never on timing: planning in the
background or on demand gives the same batches, and a resumed run replays them exactly.
"""

from __future__ import annotations

import mmap
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from contextlib import suppress

import numpy as np

SCAN_RELEASE_ROWS = 1 << 24  # drop the scanned pages of a column every 16M rows


def release(arr) -> None:
    """Drop the pages of a memory-mapped column from this process (they stay in the page
    cache): without it, every page a scan touched counts as the process's own memory."""
    while arr is not None and getattr(arr, "_mmap", None) is None:
        arr = getattr(arr, "base", None)  # np.asarray(memmap) is a view of the memmap
    mm = getattr(arr, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    with suppress(OSError, ValueError):  # a closed or odd mapping: the pages stay resident
        mm.madvise(mmap.MADV_DONTNEED)


def cluster_chunks(clusters, n: int, chunk_rows: int) -> np.ndarray | None:
    """Row boundaries ``[0, ..., n]``: at the first cluster start at or after every multiple
    of ``chunk_rows`` (a cluster bigger than a chunk makes one long chunk). ``None`` when
    ``clusters`` is not sorted, i.e. a cluster's rows may not be contiguous."""
    if clusters is None:
        return np.r_[np.arange(0, n, chunk_rows), n].astype(np.int64)
    bounds, since_release = [0], 0
    for lo in range(0, n, chunk_rows):
        c = np.asarray(clusters[max(lo - 1, 0) : min(n, lo + chunk_rows)])
        if not bool(np.all(c[1:] >= c[:-1])):
            release(clusters)
            return None
        if lo > 0:
            new = c[1:] != c[:-1]  # a cluster starts at row lo + k where new[k]
            k = int(new.argmax())
            if new[k] and lo + k > bounds[-1]:
                bounds.append(lo + k)
        since_release += len(c)
        if since_release >= SCAN_RELEASE_ROWS:
            release(clusters)
            since_release = 0
    release(clusters)
    return np.asarray(bounds + [n], np.int64)


def count_distinct(values, chunk_rows: int = 1 << 22) -> int:
    """How many distinct values ``values`` holds: one scan in chunks when it is sorted (as
    ``prepare`` writes cluster ids), so a 214M-row column is never copied; else ``np.unique``."""
    n, count, last = len(values), 0, None
    for lo in range(0, n, chunk_rows):
        c = np.asarray(values[lo : lo + chunk_rows])
        if not bool(np.all(c[1:] >= c[:-1])) or (last is not None and c[0] < last):
            release(values)
            return len(np.unique(values))
        count += int(np.count_nonzero(c[1:] != c[:-1])) + int(last is None or c[0] != last)
        last = c[-1]
    release(values)
    return count


def row_dtype(n: int):
    """The smallest of ``uint32``/``int64`` that holds row numbers below ``n``."""
    return np.uint32 if n < 2**32 else np.int64


class EpochPlan:
    """One rank's batches of one epoch, as ``num_blocks`` blocks that ``make_block(j)``
    plans: ``(items, starts, ends, segments)`` as
    :meth:`~pyg_mpnn.data.sampler.TokenBudgetBatchSampler.plan`. With ``background``, a
    daemon thread plans them in order and a reader waits only for the block it needs;
    otherwise a reader plans them on demand. An error while planning is raised to the reader.
    ``seconds``: from the start to the last block planned (``None`` until then).
    """

    def __init__(self, num_blocks: int, make_block: Callable, background: bool = True):
        self.num_blocks, self._make = num_blocks, make_block
        self.blocks: list[tuple] = []
        self.counts = [0]  # batches before block j
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread, self.seconds = None, None
        self._t0 = time.perf_counter()
        if background:
            self._thread = threading.Thread(target=self._run, daemon=True, name="epoch-plan")
            self._thread.start()

    @property
    def done(self) -> bool:
        return len(self.blocks) == self.num_blocks

    def _add(self, j: int) -> None:
        block = self._make(j)
        n = len(block[1]) if block[3] is None else len(block[3])
        with self._cond:
            self.blocks.append(block)
            self.counts.append(self.counts[-1] + n)
            if self.done:
                self.seconds = time.perf_counter() - self._t0
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            for j in range(self.num_blocks):
                self._add(j)
        except BaseException as e:  # handed to the reader, which raises it
            with self._cond:
                self._error = e
                self._cond.notify_all()

    def _wait(self, j: int) -> None:
        """Until block ``j`` is planned."""
        if self._thread is None:
            while len(self.blocks) <= j:
                self._add(len(self.blocks))
            return
        with self._cond:
            self._cond.wait_for(lambda: len(self.blocks) > j or self._error is not None)
            if self._error is not None and len(self.blocks) <= j:
                raise self._error

    def __len__(self) -> int:
        """Batches in the epoch (waits for the whole plan)."""
        self._wait(self.num_blocks - 1)
        return self.counts[-1]

    def batch(self, b: int) -> list[int] | None:
        """Batch ``b`` of the epoch, or ``None`` past its end."""
        while self.counts[-1] <= b and len(self.blocks) < self.num_blocks:
            self._wait(len(self.blocks))
        if b >= self.counts[-1]:
            return None
        j = bisect_right(self.counts, b) - 1
        items, starts, ends, segs = self.blocks[j]
        k = b - self.counts[j]
        if segs is None:
            return items[starts[k] : ends[k]].tolist()
        return np.concatenate([items[s:e] for s, e in segs[k]]).tolist()
