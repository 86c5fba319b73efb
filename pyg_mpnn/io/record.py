"""The one record type every reader returns, and its conversion to a PyG ``Data``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from pyg_mpnn.alphabet import encode
from pyg_mpnn.errors import UserError

if TYPE_CHECKING:
    from torch_geometric.data import Data

BACKBONE_ATOMS = ("N", "CA", "C", "O")
# What makes a residue present (``ProteinRecord.mask``): all four backbone atoms for the
# full-backbone model, the CA atom alone for the CA-only model.
BACKBONES = ("full", "ca")
CHAIN_OFFSET = 100  # the original's residue_idx = 100 * chain + position
SPLITS = ("train", "valid", "test")  # a record's meta["split"]; a dataset's split codes 0, 1, 2

# Why a source could not be turned into a record (``ReadError.kind``): reports count skips by
# kind, and ``reason`` says the rest.
ReadErrorKind = Literal[
    "unreadable",  # cannot read the bytes, or content malformed for its format
    "missing input",  # a named file or folder does not exist
    "empty file",
    "corrupt or truncated gzip",
    "not a structure",  # neither structure records nor an mmCIF data block
    "no protein chain",
    "no complete backbone",  # not a single backbone atom with a finite coordinate
    "non-finite coordinates",
    "bad JSONL line",
    "unreadable .pt",  # a pdb_2021aug02 entry or chain file that torch cannot load
    "too many chain copies",
    "no designed chain",
    "low pLDDT",
]
READ_ERROR_KINDS: tuple[str, ...] = get_args(ReadErrorKind)


def _rebuild_read_error(cls, args: tuple, state: dict):
    err = Exception.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class ReadError(UserError):
    """A structure source could not be turned into records. ``str()`` names the file and reason.

    Args:
        source: the file (or ``file:entry``) that failed.
        reason: what is wrong with it, for people.
        kind: the category, one of :data:`READ_ERROR_KINDS` (default ``"unreadable"``), for
            reports that count errors by kind.
    """

    def __init__(self, source: str, reason: str, kind: ReadErrorKind = "unreadable"):
        if kind not in READ_ERROR_KINDS:
            raise ValueError(f"unknown ReadError kind {kind!r}; use one of {READ_ERROR_KINDS}")
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
        self.kind = kind

    def __reduce__(self):
        # Rebuilt from its attributes, not by calling __init__ again (subclasses take other
        # arguments): a ReadError crosses process boundaries (``iter_source(workers=...)``).
        return _rebuild_read_error, (type(self), self.args, self.__dict__)


@dataclass
class ProteinRecord:
    """One protein (one or more chains), residues concatenated chain after chain.

    Attributes:
        name: identifier (e.g. ``"1abc"`` or ``"1abc_A"``).
        seq: one letter per residue in ProteinMPNN's alphabet (``X`` = unknown).
        coords: float32 ``[N, 4, 3]`` backbone N, CA, C, O; NaN where an atom is missing.
        chain_index: int64 ``[N]``, the chain (0..C-1) of each residue.
        chain_ids: the C chain identifiers, as in the source file.
        designed: bool ``[C]``, chains to be predicted (the rest are visible context).
        residue_ids: optional author numbering per residue (``"12"``, ``"12A"``).
        plddt: optional float32 ``[N]`` per-residue confidence (AlphaFold DB).
        meta: free-form source metadata (path, resolution, date, cluster, ...).
        backbone: which atoms a residue needs to count as present (:attr:`mask`): ``"full"``
            (N, CA, C and O) or ``"ca"`` (CA alone, for CA-only models). A view, not data:
            readers and the dataset store leave it ``"full"``; whoever feeds a CA-only model
            sets it.
    """

    name: str
    seq: str
    coords: np.ndarray
    chain_index: np.ndarray
    chain_ids: list[str]
    designed: np.ndarray
    residue_ids: list[str] | None = None
    plddt: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    backbone: str = "full"

    def __post_init__(self):
        self.coords = np.asarray(self.coords, dtype=np.float32).reshape(-1, 4, 3)
        self.chain_index = np.asarray(self.chain_index, dtype=np.int64)
        self.designed = np.asarray(self.designed, dtype=bool)
        n = len(self.seq)
        if self.coords.shape[0] != n or self.chain_index.shape[0] != n:
            raise ValueError(
                f"{self.name}: seq ({n}), coords ({self.coords.shape[0]}) and "
                f"chain_index ({self.chain_index.shape[0]}) lengths differ"
            )
        if self.backbone not in BACKBONES:
            raise ValueError(f"{self.name}: backbone must be one of {BACKBONES}")
        if len(self.designed) != len(self.chain_ids):
            raise ValueError(
                f"{self.name}: designed has {len(self.designed)} entries for "
                f"{len(self.chain_ids)} chains"
            )

    @property
    def num_residues(self) -> int:
        return len(self.seq)

    @property
    def mask(self) -> np.ndarray:
        """True where the residue is present: all four backbone atoms finite, or with
        ``backbone == "ca"`` its CA atom (:meth:`present`)."""
        return self.present(self.backbone)

    def present(self, backbone: str = "full") -> np.ndarray:
        """``[N]`` bool: residues whose atoms for ``backbone`` (``"full"``: N, CA, C, O;
        ``"ca"``: CA) are all finite."""
        if backbone == "ca":
            return np.isfinite(self.coords[:, 1]).all(axis=-1)
        return np.isfinite(self.coords).all(axis=(1, 2))

    def chain_seq(self, chain: int | str) -> str:
        c = self.chain_ids.index(chain) if isinstance(chain, str) else chain
        idx = np.nonzero(self.chain_index == c)[0]
        return "".join(self.seq[i] for i in idx)

    def select_chains(self, keep) -> ProteinRecord:
        """A record with only the chains whose index is in ``keep`` (order kept)."""
        keep = [c for c in range(len(self.chain_ids)) if c in set(keep)]
        remap = {c: i for i, c in enumerate(keep)}
        sel = np.isin(self.chain_index, keep)
        idx = np.nonzero(sel)[0]
        return ProteinRecord(
            name=self.name,
            seq="".join(self.seq[i] for i in idx),
            coords=self.coords[sel],
            chain_index=np.array([remap[c] for c in self.chain_index[sel]], dtype=np.int64),
            chain_ids=[self.chain_ids[c] for c in keep],
            designed=self.designed[keep],
            residue_ids=[self.residue_ids[i] for i in idx] if self.residue_ids else None,
            plddt=self.plddt[sel] if self.plddt is not None else None,
            meta=dict(self.meta),
            backbone=self.backbone,
        )

    @staticmethod
    def from_chains(name, chains, designed=None, meta=None) -> ProteinRecord:
        """Build from a list of ``(chain_id, seq, coords[L,4,3], residue_ids|None)``."""
        seq = "".join(c[1] for c in chains)
        coords = (
            np.concatenate([np.asarray(c[2], np.float32).reshape(-1, 4, 3) for c in chains])
            if chains
            else np.zeros((0, 4, 3), np.float32)
        )
        chain_index = (
            np.concatenate([np.full(len(c[1]), i, np.int64) for i, c in enumerate(chains)])
            if chains
            else np.zeros(0, np.int64)
        )
        rids = None
        if chains and all(len(c) > 3 and c[3] is not None for c in chains):
            rids = [r for c in chains for r in c[3]]
        return ProteinRecord(
            name=name,
            seq=seq,
            coords=coords,
            chain_index=chain_index,
            chain_ids=[c[0] for c in chains],
            designed=np.ones(len(chains), bool) if designed is None else designed,
            residue_ids=rids,
            meta=meta or {},
        )


def residue_idx(chain_index: np.ndarray) -> np.ndarray:
    """The original's residue index: ``100 * chain + position in the concatenation``.

    Only differences within a chain reach the model (across chains the positional
    feature is a separate class), so this equals ``tied_featurize``'s numbering.
    """
    return CHAIN_OFFSET * chain_index + np.arange(len(chain_index))


def to_data(record: ProteinRecord, backbone: str | None = None) -> Data:
    """Convert a record into a ``torch_geometric.data.Data`` graph without edges.

    Fields (N residues):
        ``coords``  float32 ``[N, 4, 3]``: N, CA, C, O; missing atoms set to 0.
        ``pos``     float32 ``[N, 3]``: CA coordinates (what neighbour search uses).
        ``seq``     int64 ``[N]``: residue type in ``ACDEFGHIKLMNPQRSTVWYX``.
        ``mask``    bool ``[N]``: the record's :attr:`~ProteinRecord.mask`: all four backbone
                    atoms present, or the CA atom for ``backbone="ca"`` (else the residue has no
                    edges and no loss).
        ``chain``   int64 ``[N]``: chain number within this protein (not incremented by
                    batching; edges never cross proteins).
        ``residue_idx`` int64 ``[N]``: ``100 * chain + position`` (the original's offsets).
        ``design_mask`` bool ``[N]``: residue belongs to a chain to be predicted.
        ``name``    str; ``chain_ids`` list of str.
    Edges (``edge_index``) are added by :class:`pyg_mpnn.data.graph.KNNEdges` or in the model.
    ``backbone`` (``"full"`` or ``"ca"``; default: the record's) says which residues count as
    present.
    """
    import torch  # here, not at the top: the readers (and prepare's --help) need no torch
    from torch_geometric.data import Data

    if backbone is not None and backbone != record.backbone:
        record = dataclasses.replace(record, backbone=backbone)
    coords = torch.from_numpy(np.nan_to_num(record.coords, nan=0.0).astype(np.float32))
    mask = torch.from_numpy(record.mask)
    coords[~mask] = 0.0  # as the original: a residue missing any atom is fully masked
    chain = torch.from_numpy(record.chain_index)
    return Data(
        coords=coords,
        pos=coords[:, 1].clone(),
        seq=torch.tensor(encode(record.seq), dtype=torch.long),
        mask=mask,
        chain=chain,
        residue_idx=torch.from_numpy(residue_idx(record.chain_index)),
        design_mask=torch.from_numpy(record.designed[record.chain_index])
        if len(chain)
        else torch.zeros(0, dtype=torch.bool),
        name=record.name,
        chain_ids=list(record.chain_ids),
        num_nodes=len(record.seq),
    )
