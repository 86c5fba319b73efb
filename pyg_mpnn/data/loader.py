"""DataLoader that turns token-budget index batches into PyG ``Batch``es, resumable exactly,
and survives a bad record or a dead worker process without losing or repeating a protein."""

from __future__ import annotations

import re
import signal
import warnings

from torch.utils.data import Dataset
from torch.utils.data._utils import signal_handling
from torch_geometric.loader import DataLoader

from pyg_mpnn.errors import CommandError
from pyg_mpnn.nn.graph import graph_plan

_WORKER_DIED = re.compile(r"DataLoader worker \(pid")  # torch's message when one is gone


class LoaderWorkerError(CommandError, RuntimeError):
    """Data loader workers died more often than :class:`ProteinLoader` restarts them."""


class SkippedRecord:
    """Placeholder for an item whose loading raised (kept out of the batch, reported)."""

    def __init__(self, index: int, message: str):
        self.index, self.message = index, message


class _Tolerant(Dataset):
    """``dataset[i]``, or a :class:`SkippedRecord` when reading item ``i`` raised."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        try:
            return self.dataset[i]
        except Exception as e:
            return SkippedRecord(i, f"{type(e).__name__}: {e}")


class _SkippingCollater:
    """Collates the good items; returns ``(batch or None, [messages of skipped items])``."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, items):
        good = [x for x in items if not isinstance(x, SkippedRecord)]
        skipped = [x.message for x in items if isinstance(x, SkippedRecord)]
        return (self.collate(good) if good else None), skipped


class _Planned:
    """Collates, then attaches the batch's kNN :class:`~pyg_mpnn.nn.graph.GraphPlan`
    (``knn_plan``): read here, on the host, so that the model's graph search on the training
    device needs no read back."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, items):
        batch = self.collate(items)
        if getattr(batch, "mask", None) is not None and getattr(batch, "batch", None) is not None:
            batch.knn_plan = graph_plan(batch.mask, batch.batch, batch.num_graphs)
        return batch


class ProteinLoader(DataLoader):
    """A PyG ``DataLoader`` driven by a batch sampler, with an exact ``state_dict``.

    The sampler runs in the main process; workers only load and collate, and the
    ``DataLoader`` deals whole batches to them in turn (no item is loaded by two workers).
    Workers prefetch, so the sampler's own counter runs ahead of the training loop: this
    loader counts the batches it has *handed out* in the current epoch, and
    :meth:`state_dict` saves that count. After :meth:`load_state_dict`, the next epoch
    iteration starts with exactly the batch that followed the last one handed out.

    ``skip_errors=True``: a record whose loading raised (e.g. a
    :class:`~pyg_mpnn.data.store.ShardError` naming the shard and the record whose checksum
    failed) is left out of its batch with a warning and recorded in ``errors``
    (``(batch number, message)``); the rest of the batch and the epoch go on. By default the
    error is raised, and iterating again continues after that batch.

    A worker process that dies (killed by a signal, e.g. the out-of-memory killer) is restarted
    up to ``max_restarts`` times an epoch: the loader starts new workers at the first batch not
    yet handed out, so no protein is lost or repeated; each restart is recorded in
    ``restarts``. One death more raises :class:`LoaderWorkerError` with torch's message
    (the worker's pid and signal).
    """

    def __init__(
        self, dataset, batch_sampler, skip_errors: bool = False, max_restarts: int = 3, **kwargs
    ):
        self.source = dataset
        super().__init__(
            _Tolerant(dataset) if skip_errors else dataset, batch_sampler=batch_sampler, **kwargs
        )
        self.collate_fn = _Planned(self.collate_fn)
        if skip_errors:
            self.collate_fn = _SkippingCollater(self.collate_fn)
        self.skip_errors, self.max_restarts = skip_errors, int(max_restarts)
        self.errors: list[tuple[int, str]] = []
        self.restarts: list[str] = []
        self._handed_out, self._epoch = 0, None

    def __iter__(self):
        sampler = self.batch_sampler
        self._epoch = getattr(sampler, "epoch", 0)  # the sampler moves on once exhausted
        self._handed_out = getattr(sampler, "_consumed", 0)
        return _CountingIter(self, self._start())

    def _start(self):
        """A fresh iterator of the underlying ``DataLoader`` (new workers, if any)."""
        inner = super().__iter__()
        _detach_sigchld(inner)
        return inner

    def _restart(self, old, error: Exception):
        """New workers from the first batch not handed out, after one died (``error``)."""
        what = _dead_workers(old) or str(error)
        if hasattr(old, "_shutdown_workers"):
            old._shutdown_workers()
        n = sum(1 for r in self.restarts if r.startswith(f"epoch {self._epoch}:"))
        if n >= self.max_restarts:
            raise LoaderWorkerError(
                f"data loader worker died again ({what}) after {n} restarts this epoch; "
                "the run stops (a checkpoint resumes it exactly). Too little memory? Lower "
                "data.num_workers or data.max_tokens"
            ) from error
        message = (
            f"epoch {self._epoch}: data loader worker died ({what}); restarted the "
            f"workers at batch {self._handed_out}"
        )
        self.restarts.append(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        self._iterator = None  # persistent workers: do not reuse the broken iterator
        self.batch_sampler.load_state_dict(self.state_dict())
        return self._start()

    def state_dict(self) -> dict:
        """The sampler's state with ``consumed`` = batches handed out (not prefetched)."""
        state = self.batch_sampler.state_dict(consumed=self._handed_out)
        if self._epoch is not None:  # inside an epoch (the sampler may already be past it)
            state["epoch"] = self._epoch
        return state

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.load_state_dict(state)
        self._handed_out, self._epoch = int(state["consumed"]), None


def _detach_sigchld(inner) -> None:
    """Stop torch's SIGCHLD handler from raising, at any line of the main process, when one of
    ``inner``'s workers dies: the death is then seen where the loader waits for that worker's
    batch (a ``RuntimeError`` from ``next``, within 5 s), where it can be restarted safely."""
    if not getattr(inner, "_worker_pids_set", False):
        return
    try:  # a private torch function: if it is gone, torch's handler stays
        signal_handling._remove_worker_pids(id(inner))
        inner._worker_pids_set = False
    except Exception:
        pass


def _dead_workers(inner) -> str:
    """``"pid 123 killed by SIGKILL"`` for each dead worker of ``inner`` (``""`` if unknown)."""
    out = []
    for w in getattr(inner, "_workers", []):
        code = w.exitcode
        if code is None:
            continue
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        out.append(f"pid {w.pid} {how}")
    return ", ".join(out)


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
            except RuntimeError as e:
                if not _WORKER_DIED.search(str(e)):
                    self._failed(e)
                    continue
                self.inner = loader._restart(self.inner, e)
                continue
            except Exception as e:
                self._failed(e)
                continue
            loader._handed_out += 1
            if loader.skip_errors:
                batch, skipped = batch
                for message in skipped:
                    self._report(loader._handed_out - 1, message)
                if batch is None:  # every record of the batch was bad
                    continue
            return batch

    def _failed(self, e: Exception) -> None:
        """A whole batch failed: raise (default) or report and go on (``skip_errors``)."""
        loader = self.loader
        loader._handed_out += 1
        if not loader.skip_errors:
            raise e
        self._report(loader._handed_out - 1, f"{type(e).__name__}: {e}")

    def _report(self, n: int, message: str) -> None:
        self.loader.errors.append((n, message))
        warnings.warn(f"skipped in batch {n}: {message}", RuntimeWarning, stacklevel=2)


def make_loader(
    dataset,
    batch_sampler,
    num_workers: int = 0,
    pin_memory: bool = False,
    prefetch_factor: int | None = 2,
    persistent_workers: bool = False,
    skip_errors: bool = False,
    max_restarts: int = 3,
) -> ProteinLoader:
    """A :class:`ProteinLoader` over ``dataset`` driven by ``batch_sampler`` (lists of indices).

    The sampler runs in the main process (workers only load and collate), so its state plus
    the loader's count of handed-out batches is the single source of truth for resuming.
    ``pin_memory`` (for a CUDA device): batches in page-locked memory, so that
    ``batch.to(device, non_blocking=True)`` copies while the host goes on.
    """
    kwargs = {}
    if num_workers > 0:
        kwargs.update(prefetch_factor=prefetch_factor, persistent_workers=persistent_workers)
    return ProteinLoader(
        dataset,
        batch_sampler,
        skip_errors=skip_errors,
        max_restarts=max_restarts,
        num_workers=num_workers,
        pin_memory=pin_memory,
        **kwargs,
    )
