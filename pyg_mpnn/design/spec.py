"""What the user asked for (:class:`DesignSpec`) and its translation into per-record
:class:`~pyg_mpnn.design.constraints.Constraints`, checked against each structure."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pyg_mpnn.alphabet import ALPHABET
from pyg_mpnn.design.chains import chain_lists, keep_listed
from pyg_mpnn.design.constraints import (
    Constraints,
    DesignError,
    ResidueIndex,
    bias_from_json,
    entry_for,
    letters,
    parse_bias,
    parse_residues,
    read_json_dict,
)
from pyg_mpnn.design.pssm import PssmOptions, apply_pssm
from pyg_mpnn.design.tying import homo_oligomer_groups, jsonl_groups, tie_arrays
from pyg_mpnn.io.record import ProteinRecord


@dataclass
class DesignSpec:
    """Design options, as on the command line (see ``python -m pyg_mpnn.design --help``).

    ``chains``: designed chains (``None``: all). ``fixed`` / ``design_only``: residue specs
    (``["A:1-10,15", "B:5"]``). ``*_jsonl``: paths of the original's dictionaries.
    ``omit``: letters never sampled. ``bias``: ``"A:-1.0,W:0.5"``. ``chains_jsonl``: the
    original's ``chain_id_jsonl`` (:mod:`.chains`). ``pssm``: :class:`~.pssm.PssmOptions`.
    """

    chains: list[str] | None = None
    fixed: list[str] = field(default_factory=list)
    design_only: list[str] = field(default_factory=list)
    fixed_jsonl: str | None = None
    tied_jsonl: str | None = None
    homo_oligomer: bool = False
    omit: str = "X"
    omit_jsonl: str | None = None
    bias: str | None = None
    bias_jsonl: str | None = None
    bias_by_res_jsonl: str | None = None
    chains_jsonl: str | None = None
    pssm: PssmOptions = field(default_factory=PssmOptions)

    def load(self, names: list[str]) -> LoadedSpec:
        """Read and check everything that does not depend on a structure."""
        letters(self.omit, "--omit")
        if self.fixed and self.design_only:
            raise DesignError("--fixed and --design-only exclude each other")
        if self.tied_jsonl and self.homo_oligomer:
            raise DesignError("--tied-jsonl and --homo-oligomer exclude each other")
        if self.bias and self.bias_jsonl:
            raise DesignError("--bias and --bias-jsonl exclude each other")
        if self.chains and self.chains_jsonl:
            raise DesignError("--chains and --chains-jsonl exclude each other")
        bias = None
        if self.bias:
            bias = parse_bias(self.bias)
        elif self.bias_jsonl:
            bias = bias_from_json(
                read_json_dict(self.bias_jsonl, "--bias-jsonl"), f"--bias-jsonl {self.bias_jsonl}"
            )
        tables = {}
        for key, opt in (
            ("fixed_jsonl", "--fixed-jsonl"),
            ("tied_jsonl", "--tied-jsonl"),
            ("omit_jsonl", "--omit-jsonl"),
            ("bias_by_res_jsonl", "--bias-by-res-jsonl"),
            ("chains_jsonl", "--chains-jsonl"),
        ):
            path = getattr(self, key)
            if path:
                tables[key] = (f"{opt} {path}", read_json_dict(path, opt))
        pssm = self.pssm.load()
        if pssm:
            tables["pssm_jsonl"] = pssm
        return LoadedSpec(self, bias, tables, names)


@dataclass
class LoadedSpec:
    spec: DesignSpec
    bias: np.ndarray | None
    tables: dict
    names: list[str]

    def entry(self, key: str, record: ProteinRecord):
        if key not in self.tables:
            return None
        where, table = self.tables[key]
        return where, entry_for(table, record, where, self.names)

    def select(self, record: ProteinRecord) -> ProteinRecord:
        """The record as designed: without the chains its ``--chains-jsonl`` entry lists in
        neither list (the record itself when there are none)."""
        got = self.entry("chains_jsonl", record)
        if got is None or got[1] is None:
            return record
        return keep_listed(record, *chain_lists(got[1], record, got[0]))

    def _designed_chains(self, record: ProteinRecord) -> list[str]:
        got = self.entry("chains_jsonl", record)
        if got is not None and got[1] is not None:
            return chain_lists(got[1], record, got[0])[0]
        return self.spec.chains or list(record.chain_ids)

    def constraints(self, record: ProteinRecord) -> Constraints:
        """Constraints of one record (after :meth:`select`); sets ``record.designed`` to the
        designed chains."""
        index = ResidueIndex(record)
        chains = self._designed_chains(record)
        for c in chains:
            index.chain(c, "--chains")
        record.designed = np.array([c in chains for c in record.chain_ids])
        designed = record.designed[record.chain_index].copy()
        designed = self._fixed(record, index, designed)
        if not (designed & record.mask).any():
            trace = record.backbone == "full" and (designed & record.present("ca")).any()
            raise DesignError(
                f"{record.name}: no residue left to design (with "
                f"{'a CA atom' if record.backbone == 'ca' else 'a complete backbone'}) after "
                "--chains / fixed positions"
                + ("; a CA trace: design it with --ca-only" if trace else "")
            )
        cons = Constraints(designed=designed, bias=self.bias)
        cons.omit = self._omit(record, index)
        cons.bias_by_res = self._bias_by_res(record, index)
        self._tied(record, index, cons)
        self._check_omit(record, index, cons)
        if "pssm_jsonl" in self.tables:
            where, table = self.tables["pssm_jsonl"]
            apply_pssm(
                self.spec.pssm, (where, table, self.names), record, index, cons, self.spec.omit
            )
        return cons

    def _fixed(self, record, index, designed):
        if self.spec.fixed:
            designed[parse_residues(self.spec.fixed, index, "--fixed")] = False
        if self.spec.design_only:
            only = parse_residues(self.spec.design_only, index, "--design-only")
            outside = only[~designed[only]]
            if len(outside):
                raise DesignError(
                    f"--design-only: {index.label(int(outside[0]))} is not in a "
                    f"designed chain (--chains {','.join(self.spec.chains or [])})"
                )
            designed[:] = False
            designed[only] = True
        got = self.entry("fixed_jsonl", record)
        if got and got[1]:
            where, entry = got
            for chain, positions in _chain_dict(entry, where, record).items():
                for p in positions:
                    designed[index.position(chain, p, where)] = False
        return designed

    def _omit(self, record, index):
        got = self.entry("omit_jsonl", record)
        if not got or not got[1]:
            return None
        where, entry = got
        omit = np.zeros((record.num_residues, len(ALPHABET)), bool)
        for chain, items in _chain_dict(entry, where, record).items():
            for item in items:
                if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], str)):
                    raise DesignError(
                        f'{where}: chain {chain}: expected [[positions], "LETTERS"], got {item!r}'
                    )
                cols = letters(item[1], f"{where} chain {chain}")
                for p in item[0]:
                    omit[index.position(chain, p, where), cols] = True
        return omit

    def _bias_by_res(self, record, index):
        got = self.entry("bias_by_res_jsonl", record)
        if not got or not got[1]:
            return None
        where, entry = got
        out = np.zeros((record.num_residues, len(ALPHABET)), np.float32)
        for chain, rows in _chain_dict(entry, where, record).items():
            idx = index.chain(chain, where)
            try:
                arr = np.asarray(rows, dtype=np.float32) if isinstance(rows, list) else None
            except (TypeError, ValueError):  # ragged rows, or not numbers
                arr = None
            if arr is None or arr.shape != (len(idx), len(ALPHABET)) or not np.isfinite(arr).all():
                raise DesignError(
                    f"{where}: chain {chain} needs {len(idx)} rows of "
                    f"{len(ALPHABET)} finite numbers, got shape "
                    f"{None if arr is None else arr.shape}"
                )
            out[idx] = arr
        return out

    def _tied(self, record, index, cons):
        groups, where = [], "--homo-oligomer"
        got = self.entry("tied_jsonl", record)
        if got and got[1]:
            where = got[0]
            groups = jsonl_groups(got[1], index, where)
        elif self.spec.homo_oligomer:
            chains = [c for c, d in zip(record.chain_ids, record.designed) if d]
            groups = homo_oligomer_groups(record, chains)
        if groups:
            cons.tie_group, cons.tie_weight = tie_arrays(
                groups, record, cons.designed, index, where
            )
            _share_within_groups(cons)

    def _check_omit(self, record, index, cons):
        allowed = np.array([a not in self.spec.omit for a in ALPHABET])
        if not allowed.any():
            raise DesignError(f"--omit {self.spec.omit}: no letter left to sample")
        if cons.omit is not None:
            left = (allowed & ~cons.omit).any(1)
            bad = np.nonzero(cons.designed & record.mask & ~left)[0]
            if len(bad):
                raise DesignError(
                    f"--omit-jsonl: no letter left to sample at "
                    f"{record.name} {index.label(int(bad[0]))}"
                )


def _share_within_groups(cons: Constraints) -> None:
    """One draw serves a whole tied group: its members share the union of their omitted
    letters and the mean of their per-residue biases (the original uses the last member's)."""
    for g in np.unique(cons.tie_group[cons.tie_group >= 0]):
        members = np.nonzero(cons.tie_group == g)[0]
        if cons.omit is not None:
            cons.omit[members] = cons.omit[members].any(0)
        if cons.bias_by_res is not None:
            cons.bias_by_res[members] = cons.bias_by_res[members].mean(0)


def _chain_dict(entry, where: str, record: ProteinRecord) -> dict:
    if not isinstance(entry, dict):
        raise DesignError(
            f"{where}: {record.name}: expected {{chain: ...}}, got {type(entry).__name__}"
        )
    return entry
