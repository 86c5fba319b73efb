"""DataLoader that turns token-budget index batches into PyG ``Batch``es."""

from __future__ import annotations

from torch_geometric.loader import DataLoader


def make_loader(dataset, batch_sampler, num_workers: int = 0, pin_memory: bool = False,
                prefetch_factor: int | None = 2, persistent_workers: bool = False) -> DataLoader:
    """A PyG ``DataLoader`` over ``dataset`` driven by ``batch_sampler`` (lists of indices).

    The sampler runs in the main process (workers only load and collate), so its
    ``state_dict`` is the single source of truth for resuming.
    """
    kwargs = {}
    if num_workers > 0:
        kwargs.update(prefetch_factor=prefetch_factor, persistent_workers=persistent_workers)
    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers,
                      pin_memory=pin_memory, **kwargs)
