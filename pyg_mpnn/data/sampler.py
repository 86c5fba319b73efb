"""Token-budget batch sampling: padding-free batches of whole proteins, planned with numpy.

The original packs proteins into batches of at most 10,000 *padded* tokens
(``batch_size * max_length``) and silently drops the protein that overflows a batch.
Here a batch is a list of dataset indices whose *real* residue counts sum to at most
``max_tokens``; nothing is dropped (a protein longer than the budget gets a batch of its
own), and everything is computed from the ``lengths`` (and ``clusters``) arrays of the index,
so no graph is ever loaded just to be counted.

Per epoch (deterministic from ``seed`` and ``epoch``), all vectorised (a 10M-entry plan takes
seconds):

1. **sample** -- all items, or one member per cluster when ``clusters`` is given (the
   original's epochs). Members are grouped once (no sort at all when the index is already
   sorted by cluster, as format 2 folders are); the member is drawn by inverse CDF on the
   cumulative ``cluster_weights``: one ``searchsorted`` for all clusters;
2. **bucket** -- sort by length with a random tie-break (``lexsort``);
3. **pack** -- greedy: each batch ends where the cumulative length passes the budget
   (``searchsorted`` on the cumsum, one call per batch);
4. **shuffle** the order of batches;
5. **shard** -- batch ``b`` goes to rank ``b % num_replicas``; the largest batches are split
   in two until the count divides evenly, so every rank runs the same number of steps and
   every item is used exactly once. Inside a rank, the ``DataLoader`` deals whole batches to
   its workers, so no item is loaded twice.

Up to ``block_rows`` items the epoch is planned in one piece as above. A larger index (one
whose clusters are contiguous runs, as format 2 keeps them) is planned in **blocks** of about
``block_rows`` rows, each planned alone by steps 1-5 from its own rows, in a background
thread that runs ahead into the next epoch (:mod:`pyg_mpnn.data.plan`): the first batch waits
for one block, an epoch boundary for none, and a rank holds only its own batches.

The plan is kept as arrays (an item order and batch boundaries); batches become lists only
when they are yielded. ``state_dict()`` / ``load_state_dict()`` record the epoch and how many
batches of it were consumed, so a resumed run continues with exactly the next batch.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from torch.utils.data import Sampler

from pyg_mpnn.data.plan import EpochPlan, cluster_chunks, release, row_dtype

WEIGHTINGS = ("uniform", "length", "plddt")


def member_weights(kind: str, lengths=None, plddt=None) -> np.ndarray | None:
    """Per-item weights for picking a cluster's member: ``"uniform"`` (``None``),
    ``"length"`` (proportional to residues) or ``"plddt"`` (proportional to mean pLDDT;
    items without pLDDT count as 100)."""
    if kind == "uniform":
        return None
    if kind == "length":
        return np.asarray(lengths, np.float64)
    if kind == "plddt":
        p = np.asarray(plddt, np.float64)
        return np.where(np.isfinite(p), np.clip(p, 1e-3, None), 100.0)
    raise ValueError(f"unknown weighting {kind!r}; use one of {WEIGHTINGS} or an array")


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Yield lists of dataset indices with at most ``max_tokens`` residues each.

    Args:
        lengths: residues per item (``int`` array, one per dataset index; a memory map is
            fine, it is never copied whole).
        max_tokens: residue budget of a batch (default 10,000, as the original).
        clusters: optional cluster id per item; if given, each epoch uses one member of
            every cluster.
        cluster_weights: optional per-item weights for picking the member of a cluster, or
            one of ``"uniform"``, ``"length"`` (see :func:`member_weights`; for ``"plddt"``
            pass ``member_weights("plddt", plddt=dataset.plddt)``).
        shuffle: shuffle tie-breaks and batch order (``False``: sorted, fixed order).
        seed: base seed; epoch ``e`` uses ``(seed, e)``.
        num_replicas, rank: data-parallel sharding.
        max_items: optional cap on proteins per batch.
        block_rows: an index of more items is planned in blocks of about this many rows
            (see :mod:`pyg_mpnn.data.plan`); fewer: in one piece.
        background: plan in a background thread, and the next epoch as soon as the current
            one is planned (``False``: on demand; the same batches either way).
    """

    CHUNKS_PER_BLOCK = 16  # chunks shuffled into a block: how well a block mixes the index

    def __init__(
        self,
        lengths,
        max_tokens: int = 10_000,
        clusters=None,
        cluster_weights=None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        max_items: int | None = None,
        block_rows: int = 1 << 21,
        background: bool = True,
    ):
        self.lengths = np.asarray(lengths)
        if max_tokens <= 0:
            raise ValueError("max_tokens must be positive")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.max_tokens = int(max_tokens)
        self.clusters = None if clusters is None else np.asarray(clusters)
        if isinstance(cluster_weights, str) and cluster_weights == "length":
            cluster_weights = self.lengths  # as float64 per block: no copy of the whole column
        elif isinstance(cluster_weights, str):
            cluster_weights = member_weights(cluster_weights, lengths=self.lengths)
        self.cluster_weights = None if cluster_weights is None else np.asarray(cluster_weights)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.max_items = max_items
        self.block_rows, self.background = max(1, int(block_rows)), bool(background)
        self.epoch = 0
        self._consumed = 0  # batches of the current epoch already yielded
        self._groups = None  # (member order, cluster starts, cumulative weights), built lazily
        self._chunks = None  # row boundaries of the blocks' chunks, found lazily
        self._plans: dict[tuple, EpochPlan] = {}  # (seed, epoch) -> plan: current and next

    # -- epoch construction -------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._consumed = 0
        self.epoch = int(epoch)

    def _group(self):
        """Members of each cluster as contiguous runs of ``order`` (computed once)."""
        if self._groups is None:
            c = self.clusters
            if len(c) < 2 or bool(np.all(c[1:] >= c[:-1])):
                order = None  # already sorted by cluster (format 2 index): no copy, no sort
                cs = c
            else:
                order = np.argsort(c, kind="stable")
                cs = c[order]
            starts = (
                np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]]) if len(cs) else np.zeros(0, np.int64)
            )
            cum = None
            if self.cluster_weights is not None:
                w = self.cluster_weights if order is None else self.cluster_weights[order]
                cum = _cumulative(w)
            self._groups = (order, starts, cum)
        return self._groups

    def _items(self, rng) -> np.ndarray:
        """One member per cluster (all items without clusters)."""
        if self.clusters is None:
            return np.arange(len(self.lengths))
        order, starts, cum = self._group()
        pos = _draw(starts, len(self.clusters), cum, rng)
        return pos if order is None else order[pos]

    def _block_items(self, chunk_ids: np.ndarray, rng) -> np.ndarray:
        """One member per cluster of a block: the rows of its chunks (all without clusters)."""
        spans = [(int(self._chunks[i]), int(self._chunks[i + 1])) for i in np.sort(chunk_ids)]
        rows = np.concatenate([np.arange(lo, hi, dtype=np.int64) for lo, hi in spans])
        if self.clusters is None:
            return rows
        # chunks start at cluster starts and ascend: ids never repeat across a seam
        c = np.concatenate([np.asarray(self.clusters[lo:hi]) for lo, hi in spans])
        starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
        cum = None
        if self.cluster_weights is not None:
            cum = _cumulative(np.concatenate([self.cluster_weights[lo:hi] for lo, hi in spans]))
        return rows[_draw(starts, len(rows), cum, rng)]

    # -- the plan --------------------------------------------------------------
    def _pack(self, lengths: np.ndarray) -> np.ndarray:
        """Greedy batch boundaries over ``lengths`` (already in batch order): ``bounds[b]`` to
        ``bounds[b + 1]`` is batch ``b``."""
        cum = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        n, cap = len(lengths), self.max_items
        bounds = [0]
        start = 0
        while start < n:
            end = int(np.searchsorted(cum, cum[start] + self.max_tokens, side="right")) - 1
            if cap is not None:
                end = min(end, start + cap)
            end = max(end, start + 1)  # an oversized protein rides alone
            bounds.append(end)
            start = end
        return np.asarray(bounds, np.int64)

    def _even_out(self, bounds: np.ndarray, perm: np.ndarray, tokens: np.ndarray):
        """Make the batch count a multiple of ``num_replicas`` so every rank runs the same
        number of steps. Returns ``(starts, ends, None)`` or, in the rare small case,
        ``(None, None, segments)`` with a list of ``(start, end)`` pieces per batch.

        Common case (vectorised): split the ``need`` largest multi-protein batches in two, in
        place in the batch order. Otherwise, with at least as many proteins as the next
        multiple of the ranks, split the largest multi-protein batch repeatedly; with fewer,
        merge the two smallest batches down to the multiple below (the one case a batch may
        exceed the budget)."""
        starts, ends = bounds[:-1][perm], bounds[1:][perm]
        need = (-len(perm)) % self.num_replicas
        if need == 0:
            return starts, ends, None
        cand = np.flatnonzero(ends - starts > 1)
        if len(cand) >= need:
            tok = tokens[ends[cand]] - tokens[starts[cand]]
            chosen = cand[np.argsort(-tok, kind="stable")[:need]]
            split = np.zeros(len(starts), bool)
            split[chosen] = True
            rep = 1 + split.astype(np.int64)
            first = np.cumsum(rep) - rep
            mid = (starts + ends) // 2
            new_s, new_e = np.repeat(starts, rep), np.repeat(ends, rep)
            new_e[first[split]] = mid[split]
            new_s[first[split] + 1] = mid[split]
            return new_s, new_e, None
        segs = [[(int(s), int(e))] for s, e in zip(starts, ends)]
        size = lambda b: sum(e - s for s, e in b)
        tok = lambda b: sum(int(tokens[e] - tokens[s]) for s, e in b)
        r = self.num_replicas
        up = -(-len(segs) // r) * r
        if int(bounds[-1]) >= up:  # bounds[-1]: the number of proteins
            target = up  # enough proteins: split until the next multiple
        else:
            target = (len(segs) // r) * r  # merge down to the multiple below
            if target == 0:
                return None, None, segs  # fewer proteins than ranks: nothing evens it out
        while len(segs) < target:
            j = max((i for i, b in enumerate(segs) if size(b) > 1), key=lambda i: tok(segs[i]))
            if len(segs[j]) == 1:
                ((s, e),) = segs[j]
                halves = [[(s, (s + e) // 2)], [((s + e) // 2, e)]]
            else:
                h = len(segs[j]) // 2
                halves = [segs[j][:h], segs[j][h:]]
            segs[j : j + 1] = halves
        while len(segs) > target:
            a, c = sorted(range(len(segs)), key=lambda i: tok(segs[i]))[:2]
            merged = segs[a] + segs[c]
            segs = [b for i, b in enumerate(segs) if i not in (a, c)] + [merged]
        return None, None, segs

    def _arrange(self, items: np.ndarray, rng) -> tuple:
        """Steps 2-5 over the sampled ``items``: this rank's ``(items, starts, ends, None)``
        -- batch ``b`` is ``items[starts[b]:ends[b]]`` -- or, when small batches had to be
        merged, ``(items, None, None, segments)`` with ``(start, end)`` pieces."""
        lens = self.lengths[items].astype(np.int64)
        if self.shuffle:
            sort = np.lexsort((rng.random(len(items)), lens))
        else:
            sort = np.argsort(lens, kind="stable")
        items, lens = items[sort], lens[sort]
        bounds = self._pack(lens)
        nb = len(bounds) - 1
        perm = rng.permutation(nb) if self.shuffle else np.arange(nb)
        tokens = np.concatenate([[0], np.cumsum(lens)])
        starts, ends, segs = self._even_out(bounds, perm, tokens)
        r = slice(self.rank, None, self.num_replicas)
        if segs is not None:
            return items, None, None, segs[r]
        # keep only this rank's items, as compact row numbers
        s, e = starts[r], ends[r]
        off = np.zeros(len(s) + 1, np.int64)
        np.cumsum(e - s, out=off[1:])
        idx = np.repeat(s - off[:-1], e - s) + np.arange(off[-1], dtype=np.int64)
        return items[idx].astype(row_dtype(len(self.lengths))), off[:-1], off[1:], None

    def _block(self, key: tuple, blocks: list | None, j: int) -> tuple:
        """Block ``j`` of the epoch ``key = (seed, epoch)``, planned from ``(seed, epoch, j)``
        (the whole epoch from ``(seed, epoch)`` when it is one piece)."""
        if blocks is None:
            rng = np.random.default_rng(list(key))
            items = self._items(rng)
        else:
            rng = np.random.default_rng([*key, j])
            items = self._block_items(blocks[j], rng)
        out = self._arrange(items, rng)
        release(self.lengths)
        release(self.clusters)
        return out

    def _blocks(self, key: tuple) -> list | None:
        """The chunk numbers of each block of the epoch, or ``None``: one piece (small, or
        clusters not contiguous)."""
        n = len(self.lengths)
        if n <= self.block_rows:
            return None
        if self._chunks is None:
            chunk = max(1, self.block_rows // self.CHUNKS_PER_BLOCK)
            found = cluster_chunks(self.clusters, n, chunk)
            self._chunks = False if found is None else found
        if self._chunks is False:
            return None
        k = len(self._chunks) - 1
        order = np.random.default_rng(list(key)).permutation(k) if self.shuffle else np.arange(k)
        return np.array_split(order, -(-k // self.CHUNKS_PER_BLOCK))

    def plan(self, epoch: int | None = None) -> EpochPlan:
        """This rank's :class:`~pyg_mpnn.data.plan.EpochPlan` of the current epoch (or of
        ``epoch``), started on first use and kept for the current and the next epoch."""
        key = (self.seed, self.epoch if epoch is None else int(epoch))
        if epoch is None:  # forget plans of other epochs than this one and the next
            keep = (key, (self.seed, self.epoch + 1))
            self._plans = {k: v for k, v in self._plans.items() if k in keep}
        if key not in self._plans:
            blocks = self._blocks(key)
            self._plans[key] = EpochPlan(
                1 if blocks is None else len(blocks),
                partial(self._block, key, blocks),
                self.background,
            )
        return self._plans[key]

    def _prefetch(self) -> None:
        """Start planning the next epoch (in the background only)."""
        if self.background and (self.seed, self.epoch + 1) not in self._plans:
            self.plan(self.epoch + 1)

    def epoch_batches(self) -> list[list[int]]:
        """All batches of the current epoch for this rank, in order."""
        plan = self.plan()
        return [plan.batch(b) for b in range(len(plan))]

    # -- Sampler protocol ---------------------------------------------------
    def __iter__(self):
        plan, i = self.plan(), self._consumed
        while (batch := plan.batch(i)) is not None:
            i += 1
            self._consumed = i
            if plan.done:
                self._prefetch()
            yield batch
        # The epoch is over: the next iteration starts a fresh one unless set_epoch says.
        self._consumed = 0
        self.epoch += 1

    def __len__(self) -> int:
        """Batches of this rank in the current epoch (waits for its whole plan)."""
        n = len(self.plan())
        self._prefetch()
        return n

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_plans": {}}  # plans hold threads: planned again on use

    def state_dict(self, consumed: int | None = None) -> dict:
        """Epoch and batches consumed. Pass ``consumed`` when a prefetching loader has pulled
        batches ahead of what the training loop has actually used."""
        return {
            "epoch": self.epoch,
            "consumed": self._consumed if consumed is None else consumed,
            "seed": self.seed,
            "num_items": len(self.lengths),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; refuses a state saved over a different item count."""
        n = state.get("num_items")
        if n is not None and int(n) != len(self.lengths):
            raise ValueError(
                f"sampler state is for {n} items, this dataset has "
                f"{len(self.lengths)}: resuming would not replay the same batches"
            )
        self.epoch = int(state["epoch"])
        self._consumed = int(state["consumed"])
        self.seed = int(state.get("seed", self.seed))


def _cumulative(w: np.ndarray) -> np.ndarray:
    """``[0, w0, w0 + w1, ...]`` of member weights, checked."""
    w = np.asarray(w, np.float64)
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("cluster_weights must be finite and non-negative")
    return np.concatenate([[0.0], np.cumsum(w)])


def _draw(starts: np.ndarray, n: int, cum: np.ndarray | None, rng) -> np.ndarray:
    """Position of one member per cluster (clusters: runs from ``starts`` over ``n`` rows),
    by inverse CDF on the cumulative weights ``cum`` (``None``: uniform)."""
    ends = np.r_[starts[1:], n].astype(np.int64)
    u = rng.random(len(starts))
    if cum is None:
        pos = starts + (u * (ends - starts)).astype(np.int64)
    else:
        lo, hi = cum[starts], cum[ends]
        uniform = hi <= lo  # all-zero weights in a cluster: fall back to uniform
        target = lo + u * (hi - lo)
        pos = np.searchsorted(cum, target, side="right") - 1
        pos = np.where(uniform, starts + (u * (ends - starts)).astype(np.int64), pos)
    return np.clip(pos, starts, ends - 1)
