"""The data component of a run: dataset folders, token-budget samplers and loaders.

``data.path`` may be a prepared dataset folder (it has ``index.npz``), or any sources that
``python -m pyg_mpnn.data.prepare`` reads (structure files or folders, JSONL, ...): those are
prepared once into ``<cache>/sources/<hash>/`` (``$PYG_MPNN_CACHE``, default
``~/.cache/pyg_mpnn``; keyed by the resolved paths and, for a CA-only model, the backbone: its
sources are prepared with ``--keep-ca-only``) and reused. ``null`` means the embedded default
dataset, ``embedded`` the full embedded set (:mod:`pyg_mpnn.data.default`).

Training epochs sample one random member per sequence cluster (the original's epochs);
validation uses every protein of the held-out clusters in a fixed order. Proteins longer than
``data.max_length`` are left out (the original's ``max_protein_length``) and counted.

``data.transform`` (``null`` or ``spatial_crop`` / ``{name: spatial_crop, context_radius: 50,
inner_radius: 20}``: :mod:`pyg_mpnn.data.crop`) applies to the training proteins only;
validation always scores whole graphs, so runs with and without a crop are compared on the
same task. The token budget still counts whole-protein lengths (a crop only shrinks a batch).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from pyg_mpnn.data.crop import make_transform
from pyg_mpnn.data.dataset import ProteinDataset
from pyg_mpnn.data.default import EMBEDDED, cache_dir, default_dataset_dir
from pyg_mpnn.data.loader import make_loader
from pyg_mpnn.data.plan import count_distinct, row_dtype
from pyg_mpnn.data.prepare import prepare
from pyg_mpnn.data.sampler import TokenBudgetBatchSampler
from pyg_mpnn.train.config import ConfigError, DataConfig


def resolve_dataset(path: str | None, progress: bool = True, backbone: str = "full") -> Path:
    if path is None or path == EMBEDDED:
        return Path(default_dataset_dir(progress, full=path == EMBEDDED))
    paths = [Path(p) for p in str(path).split(",")]
    if len(paths) == 1 and (paths[0] / "index.npz").exists():
        return paths[0]
    named = [str(p.resolve()) for p in paths] + (["backbone=ca"] if backbone == "ca" else [])
    key = hashlib.sha1("\n".join(named).encode()).hexdigest()[:12]
    out = cache_dir() / "sources" / key
    if not (out / "meta.json").exists():  # messages name the sources, not this cache folder
        prepare(
            [str(p) for p in paths],
            out,
            progress=progress,
            overwrite=True,
            keep_ca_only=backbone == "ca",
        )
    return out


def _subset(ds: ProteinDataset, max_length: int | None, max_items: int | None = None):
    """The proteins of ``ds`` to train or validate on: at most ``max_length`` residues, at most
    ``max_items`` of them (a fixed random choice). With nothing left out it is ``ds`` itself,
    its columns still memory maps; else a :class:`Subset` over a NumPy array of rows (a Python
    list of them would take about 36 bytes a row: gigabytes at the AlphaFold DB's size)."""
    keep = None
    if max_length:
        long = ds.lengths > max_length
        if long.any():
            keep = np.flatnonzero(~long).astype(row_dtype(len(ds)))
        del long
    too_long = 0 if keep is None else len(ds) - len(keep)
    if max_items is not None and len(ds) - too_long > max_items:
        rows = np.arange(len(ds)) if keep is None else keep
        keep = np.sort(rows[np.random.default_rng(0).permutation(len(rows))[:max_items]])
    if keep is None:
        sub = ds
    else:
        sub = Subset(ds, keep)
        sub.lengths = ds.lengths[keep]
        sub.clusters = ds.clusters[keep]
    sub.dropped = too_long  # longer than max_length (a max_items subset is not "dropped")
    sub.available = len(ds) - too_long
    return sub


def _make_loader(
    dataset, batch_sampler, num_workers: int, max_restarts: int = 3, pin_memory: bool = False
) -> DataLoader:
    """A loader that leaves an unreadable record out of its batch (reported in
    ``loader.errors``) and restarts dead workers (docs/reliability.md)."""
    return make_loader(
        dataset,
        batch_sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        skip_errors=True,
        max_restarts=max_restarts,
    )


class RunData:
    """Train/valid datasets, the training batch sampler and loaders for one run.

    Args:
        cfg (DataConfig): the ``data`` section.
        seed (int): the batch order's seed.
        rank (int, optional): this process's rank. (default: :obj:`0`)
        world (int, optional): the number of processes. (default: :obj:`1`)
        progress (bool, optional): progress bars while a dataset is prepared.
            (default: :obj:`True`)
        backbone (str, optional): the model's ``backbone``; ``"ca"`` counts every residue with
            a CA atom (:class:`~pyg_mpnn.data.dataset.ProteinDataset`). (default: :obj:`"full"`)
        pin_memory (bool, optional): batches in page-locked memory (for a CUDA device).
            (default: :obj:`False`)
    """

    def __init__(
        self,
        cfg: DataConfig,
        seed: int,
        rank: int = 0,
        world: int = 1,
        progress: bool = True,
        backbone: str = "full",
        pin_memory: bool = False,
    ):
        d = cfg
        self.root = resolve_dataset(d.path, progress, backbone)
        self.transform_spec, self.seed = d.transform, seed
        train = ProteinDataset(
            self.root,
            split=d.train_split,
            transform=make_transform(self.transform_spec),
            backbone=backbone,
        )
        valid = ProteinDataset(self.root, split=d.valid_split, backbone=backbone)
        self.train = _subset(train, d.max_length)
        self.valid = _subset(valid, d.max_length, d.valid_max_proteins)
        if len(self.train) == 0:
            raise ConfigError(
                f"data.path {d.path or 'null (the embedded set)'}: no training proteins "
                f"(split {d.train_split!r}, max_length {d.max_length}; {len(train)} in the "
                "split before the length limit)",
                "data.path",
            )
        self.sampler = TokenBudgetBatchSampler(
            self.train.lengths,
            d.max_tokens,
            clusters=self.train.clusters,
            shuffle=True,
            seed=seed,
            num_replicas=world,
            rank=rank,
        )
        self.valid_sampler = TokenBudgetBatchSampler(
            self.valid.lengths,
            d.valid_max_tokens or d.max_tokens,
            shuffle=False,
            seed=seed,
            num_replicas=world,
            rank=rank,
        )
        self.train_loader = _make_loader(
            self.train, self.sampler, d.num_workers, d.max_worker_restarts, pin_memory
        )
        self.valid_loader = _make_loader(self.valid, self.valid_sampler, 0, pin_memory=pin_memory)
        # A private generator: creating an epoch's iterator must not draw from the global torch
        # RNG, which the model's noise, decoding order and dropout use (exact resume).
        for loader in (self.train_loader, self.valid_loader):
            loader.generator = torch.Generator().manual_seed(seed)

    def describe(self) -> str:
        return (
            f"data {self.root}: train {len(self.train)} proteins "
            f"({int(self.train.lengths.sum())} residues, "
            f"{count_distinct(self.train.clusters)} clusters), valid {len(self.valid)} "
            f"({int(self.valid.lengths.sum())} residues); longer than max_length left out: "
            f"{self.train.dropped} train, {self.valid.dropped} valid"
            + (
                f"; validating on a fixed subset of {len(self.valid)} of "
                f"{self.valid.available} proteins"
                if len(self.valid) < self.valid.available
                else ""
            )
        )
