"""Position-specific scoring matrices (PSSM): the original's ``pssm_jsonl`` and its options.

The file is the original's: ``{name: {chain: {"pssm_coef": [L], "pssm_bias": [L, 21],
"pssm_log_odds": [L, 21]}}}`` with ``L`` the residues of the chain as read and columns in the
alphabet ``ACDEFGHIKLMNPQRSTVWYX``; a chain without an entry (or an empty one) has no PSSM. Only
designed chains use theirs, as in the original. At a sampled residue ``i``:

* ``--pssm-bias-flag``: ``p <- (1 - m c_i) p + m c_i q_i`` with ``m`` = ``--pssm-multi``,
  ``c_i`` = ``pssm_coef`` and ``q_i`` = ``pssm_bias`` (a mixture of the model's probabilities
  and the PSSM's);
* ``--pssm-log-odds-flag``: letters whose ``pssm_log_odds`` are not above
  ``--pssm-threshold`` keep 0.1% of their probability (renormalised).

Both come after the bias and the global omission and before the per-residue omission, as in
the original's ``sample``. One difference, on purpose: letters of ``--omit`` get no PSSM
probability either (the original mixes the PSSM in after omitting them, so a PSSM could bring
back an omitted letter). Tied residues share the mean of their members' PSSM terms (the
original uses the last member's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyg_mpnn.alphabet import ALPHABET
from pyg_mpnn.design.constraints import (
    Constraints,
    DesignError,
    ResidueIndex,
    entry_for,
    read_json_dict,
)
from pyg_mpnn.io.record import ProteinRecord

KEYS = ("pssm_coef", "pssm_bias", "pssm_log_odds")
NO_LOG_ODDS = 10000.0  # the original's log-odds where a chain has no PSSM: always kept


@dataclass
class PssmOptions:
    """The PSSM options (``None`` where not given). See the module doc."""

    jsonl: str | None = None
    multi: float | None = None
    threshold: float | None = None
    log_odds_flag: bool = False
    bias_flag: bool = False

    def check(self) -> None:
        """Every combination that would do nothing, or something invalid, is an error."""
        used = [
            name
            for name, on in (
                ("--pssm-multi", self.multi is not None),
                ("--pssm-threshold", self.threshold is not None),
                ("--pssm-log-odds-flag", self.log_odds_flag),
                ("--pssm-bias-flag", self.bias_flag),
            )
            if on
        ]
        if not self.jsonl:
            if used:
                raise DesignError(f"{used[0]} needs --pssm-jsonl")
            return
        if not (self.bias_flag or self.log_odds_flag):
            raise DesignError(
                "--pssm-jsonl needs --pssm-bias-flag and/or --pssm-log-odds-flag "
                "(without either the PSSM is not used)"
            )
        if self.multi is not None and not self.bias_flag:
            raise DesignError("--pssm-multi needs --pssm-bias-flag")
        if self.bias_flag and (self.multi is None or not 0 < self.multi <= 1):
            raise DesignError(
                f"--pssm-bias-flag needs --pssm-multi in (0, 1] (0: the PSSM is ignored, "
                f"1: only the PSSM), got {self.multi}"
            )
        if self.threshold is not None and not self.log_odds_flag:
            raise DesignError("--pssm-threshold needs --pssm-log-odds-flag")
        if self.threshold is not None and np.isnan(self.threshold):
            raise DesignError("--pssm-threshold must be a number")

    def load(self) -> tuple[str, dict] | None:
        """``(where, table)`` of the PSSM file, or ``None`` without one."""
        self.check()
        if not self.jsonl:
            return None
        return f"--pssm-jsonl {self.jsonl}", read_json_dict(self.jsonl, "--pssm-jsonl")


def _array(value, shape: tuple[int, ...], where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.shape != shape:
        got = "not a numeric array" if arr is None else f"shape {arr.shape}"
        raise DesignError(f"{where}: expected shape {shape}, got {got}")
    return arr


def chain_pssm(value, length: int, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(coef [L], bias [L, 21], log_odds [L, 21])`` of one chain's entry, checked."""
    if not isinstance(value, dict) or any(k not in value for k in KEYS):
        raise DesignError(f"{where}: expected {{{', '.join(map(repr, KEYS))}}}")
    n = len(ALPHABET)
    coef = _array(value["pssm_coef"], (length,), f"{where} pssm_coef")
    bias = _array(value["pssm_bias"], (length, n), f"{where} pssm_bias")
    log_odds = _array(value["pssm_log_odds"], (length, n), f"{where} pssm_log_odds")
    if not (np.isfinite(coef).all() and ((coef >= 0) & (coef <= 1)).all()):
        raise DesignError(f"{where} pssm_coef: values must lie in [0, 1]")
    if not (np.isfinite(bias).all() and (bias >= 0).all()):
        raise DesignError(f"{where} pssm_bias: probabilities must be finite and >= 0")
    if np.isnan(log_odds).any():
        raise DesignError(f"{where} pssm_log_odds: NaN")
    return coef, bias, log_odds


def apply_pssm(
    opts: PssmOptions,
    loaded: tuple[str, dict, list[str]],
    record: ProteinRecord,
    index: ResidueIndex,
    cons: Constraints,
    omit: str,
) -> None:
    """Set ``cons.pssm_mix`` / ``pssm_bias`` / ``pssm_keep`` from the record's PSSM entry
    (``loaded``: where, table, input names); call it after the ties are set."""
    where, table, names = loaded
    entry = entry_for(table, record, where, names)
    if not entry:
        return
    if not isinstance(entry, dict):
        raise DesignError(f"{where}: {record.name}: expected {{chain: PSSM}}")
    n = record.num_residues
    coef = np.zeros(n, np.float32)
    bias = np.zeros((n, len(ALPHABET)), np.float32)
    log_odds = np.full((n, len(ALPHABET)), NO_LOG_ODDS, np.float32)
    for chain, value in entry.items():
        idx = index.chain(chain, where)
        if not value or not record.designed[record.chain_ids.index(chain)]:
            continue
        rows = chain_pssm(value, len(idx), f"{where}: {record.name} chain {chain}")
        coef[idx], bias[idx], log_odds[idx] = rows
    bias[:, [ALPHABET.index(a) for a in omit]] = 0.0  # on purpose: --omit holds (module doc)
    if opts.bias_flag:
        cons.pssm_mix = np.float32(opts.multi) * coef
        cons.pssm_bias = bias
    if opts.log_odds_flag:
        threshold = 0.0 if opts.threshold is None else opts.threshold
        cons.pssm_keep = (log_odds > threshold).astype(np.float32)
    _share_within_groups(cons)
    _check_left(record, index, cons, omit)


def _share_within_groups(cons: Constraints) -> None:
    if cons.tie_group is None:
        return
    for g in np.unique(cons.tie_group[cons.tie_group >= 0]):
        members = np.nonzero(cons.tie_group == g)[0]
        for name in ("pssm_mix", "pssm_bias", "pssm_keep"):
            arr = getattr(cons, name)
            if arr is not None:
                arr[members] = arr[members].mean(0)


def _check_left(record: ProteinRecord, index: ResidueIndex, cons: Constraints, omit: str):
    """A residue the PSSM alone decides (mix 1) needs a PSSM letter that is not omitted."""
    if cons.pssm_mix is None:
        return
    left = cons.pssm_bias > 0
    if cons.omit is not None:
        left &= ~cons.omit
    only_pssm = cons.pssm_mix >= 1
    bad = np.nonzero(cons.designed & record.mask & only_pssm & ~left.any(1))[0]
    if len(bad):
        raise DesignError(
            f"--pssm-jsonl: no letter left to sample at {record.name} "
            f"{index.label(int(bad[0]))} (its pssm_bias is 0 on every letter not omitted "
            f"by --omit {omit} / --omit-jsonl)"
        )
