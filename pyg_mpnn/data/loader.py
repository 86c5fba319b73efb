"""DataLoader that turns token-budget index batches into PyG ``Batch``es, resumable exactly."""

from __future__ import annotations

import warnings

from torch_geometric.loader import DataLoader


class ProteinLoader(DataLoader):
    """A PyG ``DataLoader`` driven by a batch sampler, with an exact ``state_dict``.

    The sampler runs in the main process; workers only load and collate, and the
    ``DataLoader`` deals whole batches to them in turn (no item is loaded by two workers).
    Workers prefetch, so the sampler's own counter runs ahead of the training loop: this
    loader counts the batches it has *handed out* in the current epoch, and
    :meth:`state_dict` saves that count. After :meth:`load_state_dict`, the next epoch
    iteration starts with exactly the batch that followed the last one handed out.

    ``skip_errors=True``: a batch whose loading raised (e.g. a
    :class:`~pyg_mpnn.data.store.ShardError` naming a corrupted shard) is skipped with a
    warning and recorded in ``errors`` (``(batch number, message)``), and the epoch goes on;
    by default the error is raised, and iterating again continues after that batch.
    """

    def __init__(self, dataset, batch_sampler, skip_errors: bool = False, **kwargs):
        super().__init__(dataset, batch_sampler=batch_sampler, **kwargs)
        self.skip_errors = skip_errors
        self.errors: list[tuple[int, str]] = []
        self._handed_out, self._epoch = 0, None

    def __iter__(self):
        sampler = self.batch_sampler
        self._epoch = getattr(sampler, "epoch", 0)  # the sampler moves on once exhausted
        self._handed_out = getattr(sampler, "_consumed", 0)
        return _CountingIter(self, super().__iter__())

    def state_dict(self) -> dict:
        """The sampler's state with ``consumed`` = batches handed out (not prefetched)."""
        state = self.batch_sampler.state_dict(consumed=self._handed_out)
        if self._epoch is not None:  # inside an epoch (the sampler may already be past it)
            state["epoch"] = self._epoch
        return state

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.load_state_dict(state)
        self._handed_out, self._epoch = int(state["consumed"]), None


class _CountingIter:
    """Iterator over a :class:`ProteinLoader` epoch. Unlike a generator it stays usable after
    an error was raised from ``__next__``, so the caller can skip a bad batch and go on."""

    def __init__(self, loader: ProteinLoader, inner):
        self.loader, self.inner = loader, inner

    def __iter__(self):
        return self

    def __next__(self):
        loader = self.loader
        while True:
            try:
                batch = next(self.inner)
            except StopIteration:
                loader._handed_out, loader._epoch = 0, None
                raise
            except Exception as e:  # noqa: BLE001 - reported, then the epoch continues
                loader._handed_out += 1
                if not loader.skip_errors:
                    raise
                n = loader._handed_out - 1
                loader.errors.append((n, f"{type(e).__name__}: {e}"))
                warnings.warn(f"skipped batch {n}: {e}", RuntimeWarning)
                continue
            loader._handed_out += 1
            return batch


def make_loader(dataset, batch_sampler, num_workers: int = 0, pin_memory: bool = False,
                prefetch_factor: int | None = 2, persistent_workers: bool = False,
                skip_errors: bool = False) -> ProteinLoader:
    """A :class:`ProteinLoader` over ``dataset`` driven by ``batch_sampler`` (lists of indices).

    The sampler runs in the main process (workers only load and collate), so its state plus
    the loader's count of handed-out batches is the single source of truth for resuming.
    """
    kwargs = {}
    if num_workers > 0:
        kwargs.update(prefetch_factor=prefetch_factor, persistent_workers=persistent_workers)
    return ProteinLoader(dataset, batch_sampler, skip_errors=skip_errors,
                         num_workers=num_workers, pin_memory=pin_memory, **kwargs)
