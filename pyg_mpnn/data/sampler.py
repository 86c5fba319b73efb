"""Token-budget batch sampling: padding-free batches of whole proteins.

The original packs proteins into batches of at most 10,000 *padded* tokens
(``batch_size * max_length``) and silently drops the protein that overflows a batch.
Here a batch is a list of dataset indices whose *real* residue counts sum to at most
``max_tokens``; nothing is dropped (a protein longer than the budget gets a batch of its
own), and everything is computed from a precomputed ``lengths`` array, so no graph is ever
loaded just to be counted.

Per epoch (deterministic from ``seed`` and ``epoch``):

1. **sample** -- all items, or one random member per cluster when ``clusters`` is given
   (the original's epochs: one chain per sequence cluster);
2. **bucket** -- sort by length (random tie-break), so that a batch holds proteins of
   similar size;
3. **pack** -- greedily fill batches up to ``max_tokens`` real residues;
4. **shuffle** the order of batches;
5. **shard** -- batch ``b`` goes to rank ``b % num_replicas``; batches are split in two until
   their count divides evenly, so every rank runs the same number of steps and every item
   is used exactly once.

``state_dict()`` / ``load_state_dict()`` follow the ``torch.utils.data`` stateful
convention and record the epoch and how many batches of it were consumed, so a resumed run
continues with exactly the next batch.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Sampler


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Yield lists of dataset indices with at most ``max_tokens`` residues each.

    Args:
        lengths: residues per item (``int`` array, one per dataset index).
        max_tokens: residue budget of a batch (default 10,000, as the original).
        clusters: optional cluster id per item; if given, each epoch uses one random
            member of every cluster.
        cluster_weights: optional per-item weights for picking the member of a cluster
            (default uniform within the cluster).
        shuffle: shuffle tie-breaks and batch order (``False``: sorted, fixed order).
        seed: base seed; epoch ``e`` uses ``(seed, e)``.
        num_replicas, rank: data-parallel sharding.
        max_items: optional cap on proteins per batch.
    """

    def __init__(self, lengths, max_tokens: int = 10_000, clusters=None,
                 cluster_weights=None, shuffle: bool = True, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0, max_items: int | None = None):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if max_tokens <= 0:
            raise ValueError("max_tokens must be positive")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.max_tokens = int(max_tokens)
        self.clusters = None if clusters is None else np.asarray(clusters)
        self.cluster_weights = (None if cluster_weights is None
                                else np.asarray(cluster_weights, dtype=np.float64))
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.max_items = max_items
        self.epoch = 0
        self._consumed = 0  # batches of the current epoch already yielded
        if self.clusters is not None:
            # Group members per cluster once (a stable sort: no Python dict of lists).
            order = np.argsort(self.clusters, kind="stable")
            _, starts = np.unique(self.clusters[order], return_index=True)
            self._members = np.split(order, starts[1:])

    # -- epoch construction -------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._consumed = 0
        self.epoch = int(epoch)

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])

    def _items(self, rng) -> np.ndarray:
        if self.clusters is None:
            return np.arange(len(self.lengths))
        picks = np.empty(len(self._members), dtype=np.int64)
        for c, members in enumerate(self._members):
            if len(members) == 1:
                picks[c] = members[0]
            elif self.cluster_weights is None:
                picks[c] = members[rng.integers(len(members))]
            else:
                w = self.cluster_weights[members]
                picks[c] = rng.choice(members, p=w / w.sum())
        return picks

    def _pack(self, items: np.ndarray) -> list[np.ndarray]:
        batches, start, tokens = [], 0, 0
        lengths = self.lengths[items]
        for i, n in enumerate(lengths):
            full = tokens + n > self.max_tokens
            if self.max_items is not None and i - start >= self.max_items:
                full = True
            if full and i > start:
                batches.append(items[start:i])
                start, tokens = i, 0
            tokens += n
        if len(items) > start:
            batches.append(items[start:])
        return batches

    def _even_out(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """Make the batch count a multiple of ``num_replicas`` so every rank runs the same
        number of steps: split the largest multi-protein batch in two; only when every batch
        holds a single protein, merge the two smallest (the one case a batch may exceed the
        budget, by at most the smaller protein)."""
        tokens = lambda b: int(self.lengths[b].sum())  # noqa: E731
        while len(batches) % self.num_replicas:
            multi = [i for i, b in enumerate(batches) if len(b) > 1]
            if not multi and len(batches) < self.num_replicas:
                break  # fewer proteins than ranks: nothing can even it out
            if multi:
                j = max(multi, key=lambda i: tokens(batches[i]))
                b = batches.pop(j)
                batches[j:j] = [b[: len(b) // 2], b[len(b) // 2:]]
            else:
                a, c = sorted(range(len(batches)), key=lambda i: tokens(batches[i]))[:2]
                merged = np.concatenate([batches[a], batches[c]])
                batches = [b for i, b in enumerate(batches) if i not in (a, c)] + [merged]
        return batches

    def epoch_batches(self) -> list[list[int]]:
        """All batches of the current epoch for this rank, in order."""
        rng = self._rng()
        items = self._items(rng)
        if self.shuffle:
            items = items[rng.permutation(len(items))]
        items = items[np.argsort(self.lengths[items], kind="stable")]
        batches = self._pack(items)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        batches = self._even_out(batches)
        return [b.tolist() for b in batches[self.rank::self.num_replicas]]

    # -- Sampler protocol ---------------------------------------------------
    def __iter__(self):
        batches = self.epoch_batches()
        start = self._consumed
        for i in range(start, len(batches)):
            self._consumed = i + 1
            yield batches[i]
        # The epoch is over: the next iteration starts a fresh one unless set_epoch says.
        self._consumed = 0
        self.epoch += 1

    def __len__(self) -> int:
        return len(self.epoch_batches())

    def state_dict(self, consumed: int | None = None) -> dict:
        """Epoch and batches consumed. Pass ``consumed`` when a prefetching loader has pulled
        batches ahead of what the training loop has actually used."""
        return {"epoch": self.epoch, "consumed": self._consumed if consumed is None else consumed,
                "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self._consumed = int(state["consumed"])
        self.seed = int(state.get("seed", self.seed))
