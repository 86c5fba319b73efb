"""Design constraints: which residues are sampled, tied, and which letters they may take.

Residues are named two ways:

* on the command line by chain and *author* residue number with insertion code, as in the
  structure file: ``A:1-10,15,20A B:5`` (a range runs in file order between two residues that
  exist, so ``50-55`` includes ``52A``; ``A`` alone is the whole chain);
* in the original's JSONL dictionaries (``fixed_positions_jsonl``, ``tied_positions_jsonl``,
  ``omit_AA_jsonl``, ``bias_by_res_jsonl``) by 1-based position in the chain as read (the
  original's numbering when the chain has no gaps in its residue numbers).

Every problem raises :class:`DesignError` naming the option or file and the culprit.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pyg_mpnn.alphabet import ALPHABET
from pyg_mpnn.errors import UserError
from pyg_mpnn.io.record import ProteinRecord
from pyg_mpnn.nn.decoding import DecodeControl

_ITEM_RE = re.compile(r"^(-?\d+)([A-Za-z]?)(?:-(-?\d+)([A-Za-z]?))?$")


class DesignError(UserError, ValueError):
    """Bad design input (option, file, residue, letter): the CLI exits with code 2."""


@dataclass
class Constraints:
    """Per-residue constraints of one record (``N`` residues, numpy).

    Attributes:
        designed: ``[N]`` bool, residue is sampled (designed chain, not fixed).
        omit: ``[N, 21]`` bool, per-residue forbidden letters (``None``: none).
        bias: ``[21]`` global bias added to the logits (``None``: none).
        bias_by_res: ``[N, 21]`` per-residue bias (``None``: none).
        tie_group: ``[N]`` int, tied group (``-1``: not tied); ``tie_weight`` ``[N]``.
        pssm_mix / pssm_bias / pssm_keep: ``[N]`` / ``[N, 21]`` / ``[N, 21]`` PSSM terms
            (:mod:`pyg_mpnn.design.pssm`; ``None``: none).
    """

    designed: np.ndarray
    omit: np.ndarray | None = None
    bias: np.ndarray | None = None
    bias_by_res: np.ndarray | None = None
    tie_group: np.ndarray | None = None
    tie_weight: np.ndarray | None = None
    pssm_mix: np.ndarray | None = None
    pssm_bias: np.ndarray | None = None
    pssm_keep: np.ndarray | None = None

    def control(self) -> DecodeControl:
        t = lambda a, dt=torch.float32: None if a is None else torch.as_tensor(a, dtype=dt)
        return DecodeControl(
            bias=t(self.bias),
            bias_by_res=t(self.bias_by_res),
            omit_mask=t(self.omit),
            tie_group=t(self.tie_group, torch.long),
            tie_weight=t(self.tie_weight),
            pssm_mix=t(self.pssm_mix),
            pssm_bias=t(self.pssm_bias),
            pssm_keep=t(self.pssm_keep),
        )


class ResidueIndex:
    """Lookup of a record's residues by author id or by 1-based position in their chain."""

    def __init__(self, record: ProteinRecord):
        self.record = record
        self.chains = {
            c: np.nonzero(record.chain_index == i)[0] for i, c in enumerate(record.chain_ids)
        }
        ids = record.residue_ids or [None] * record.num_residues
        self.by_id = {}
        for c, idx in self.chains.items():
            for pos, i in enumerate(idx):
                self.by_id[(c, ids[i] if ids[i] is not None else str(pos + 1))] = int(i)

    def chain(self, chain: str, where: str) -> np.ndarray:
        if chain not in self.chains:
            raise DesignError(
                f"{where}: {self.record.name} has no chain {chain!r} "
                f"(chains: {', '.join(self.record.chain_ids)})"
            )
        return self.chains[chain]

    def author(self, chain: str, rid: str, where: str) -> int:
        self.chain(chain, where)
        if (chain, rid) not in self.by_id:
            raise DesignError(f"{where}: {self.record.name} has no residue {chain}:{rid}")
        return self.by_id[(chain, rid)]

    def position(self, chain: str, pos, where: str) -> int:
        idx = self.chain(chain, where)
        if not isinstance(pos, int) or isinstance(pos, bool) or not 1 <= pos <= len(idx):
            raise DesignError(
                f"{where}: {self.record.name} chain {chain} has positions 1-{len(idx)}, not {pos!r}"
            )
        return int(idx[pos - 1])

    def label(self, i: int) -> str:
        c = self.record.chain_ids[self.record.chain_index[i]]
        rid = self.record.residue_ids[i] if self.record.residue_ids else None
        return f"{c}:{rid if rid is not None else int(np.sum(self.chains[c] < i)) + 1}"


def parse_residues(tokens: list[str], index: ResidueIndex, where: str) -> np.ndarray:
    """Residue indices named by ``["A:1-10,15,20A", "B:5", "C"]`` (author numbering)."""
    out = []
    for token in tokens:
        chain, _, items = token.partition(":")
        idx = index.chain(chain.strip(), where)
        if not items.strip():
            out.extend(idx.tolist())
            continue
        for item in items.split(","):
            m = _ITEM_RE.match(item.strip())
            if not m:
                raise DesignError(
                    f"{where}: cannot read {item!r} in {token!r} (expected e.g. A:1-10,15,20A)"
                )
            a = index.author(chain, m[1] + m[2], where)
            if m[3] is None:
                out.append(a)
                continue
            b = index.author(chain, m[3] + m[4], where)
            if b < a:
                raise DesignError(f"{where}: range {item!r} of chain {chain} runs backwards")
            out.extend(range(a, b + 1))
    return np.unique(np.asarray(out, dtype=np.int64))


def read_json_dict(path: str | Path, where: str) -> dict:
    """The original's JSONL dictionaries: one JSON object per line, merged (later lines win)."""
    out = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise DesignError(f"{where}: cannot read {path}: {err.strerror or err}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DesignError(f"{where}: {path} line {n}: not JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise DesignError(f"{where}: {path} line {n}: expected a JSON object")
        out.update(obj)
    return out


def entry_for(table: dict, record: ProteinRecord, where: str, names: list[str]):
    """The entry of ``record`` in a per-structure dictionary (``None`` when it has none);
    a dictionary that names none of the inputs is an error (wrong file or names)."""
    if not any(n in table for n in names):
        raise DesignError(
            f"{where}: names none of the inputs ({', '.join(names[:5])}); "
            f"it has: {', '.join(list(table)[:5]) or 'nothing'}"
        )
    return table.get(record.name)


def letters(text: str, where: str) -> list[int]:
    """Alphabet indices of ``text``; an unknown letter is an error."""
    bad = sorted({a for a in text if a not in ALPHABET})
    if bad:
        raise DesignError(
            f"{where}: unknown amino-acid letter {', '.join(map(repr, bad))} (alphabet: {ALPHABET})"
        )
    return [ALPHABET.index(a) for a in text]


def one_letter(text: str, where: str) -> int:
    if len(text) != 1:
        raise DesignError(f"{where}: {text!r} is not one amino-acid letter")
    return letters(text, where)[0]


def parse_bias(spec: str, where: str = "--bias") -> np.ndarray:
    """``"A:-1.0,W:0.5"`` -> ``[21]`` bias."""
    bias = np.zeros(len(ALPHABET), np.float32)
    for item in filter(None, (s.strip() for s in spec.split(","))):
        letter, sep, value = item.partition(":")
        if not sep:
            raise DesignError(f"{where}: expected LETTER:VALUE, got {item!r}")
        i = one_letter(letter.strip(), where)
        try:
            bias[i] = float(value)
        except ValueError:
            raise DesignError(f"{where}: {value!r} is not a number (in {item!r})") from None
        if not np.isfinite(bias[i]):
            raise DesignError(f"{where}: {value.strip()!r} is not a finite number (in {item!r})")
    return bias


def bias_from_json(table: dict, where: str) -> np.ndarray:
    """The original's bias_AA JSON (``{"A": -1.1, "F": 0.7}``) -> ``[21]``."""
    bias = np.zeros(len(ALPHABET), np.float32)
    for key, value in table.items():
        i = one_letter(key, where)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
            raise DesignError(f"{where}: bias of {key} is {value!r}, not a finite number")
        bias[i] = value
    return bias
