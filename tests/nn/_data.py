"""Test data for tests/nn: the shared data folder and a structure reader.

Structures are read with ``pyg_mpnn.io.structure.read_structure`` when it exists; until it
lands, a minimal Biopython reader stands in (first model, standard and known modified
residues, backbone N/CA/C/O with NaN where missing).
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np

from pyg_mpnn.alphabet import MODIFIED_TO_PARENT, THREE_TO_ONE, residue_letter
from pyg_mpnn.io.record import ProteinRecord

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("PYG_MPNN_SHARED_DATA", REPO.parent / "shared" / "data"))
STRUCTURES = DATA / "structures"
TS50 = DATA / "benchmarks" / "ts50.jsonl"


def ts50_records(names=None) -> list[ProteinRecord]:
    out = []
    with open(TS50) as f:
        for line in f:
            d = json.loads(line)
            if names is not None and d["name"] not in names:
                continue
            xyz = np.stack([np.asarray(d["coords"][a], np.float32) for a in ("N", "CA", "C", "O")], 1)
            out.append(ProteinRecord.from_chains(d["name"], [("A", d["seq"], xyz, None)]))
    return out


def _biopython_read(path: Path) -> ProteinRecord:
    from Bio.PDB import MMCIFParser, PDBParser

    name = path.name
    cif = ".cif" in name
    parser = MMCIFParser(QUIET=True) if cif else PDBParser(QUIET=True)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt") as handle:
        structure = parser.get_structure(name, handle)
    chains = []
    for chain in next(iter(structure)):
        seq, xyz = [], []
        for res in chain:
            rn = res.get_resname().strip()
            if rn not in THREE_TO_ONE and rn not in MODIFIED_TO_PARENT:
                continue
            seq.append(residue_letter(rn))
            xyz.append([res[a].coord if a in res else [np.nan] * 3 for a in ("N", "CA", "C", "O")])
        if seq:
            chains.append((chain.id, "".join(seq), np.asarray(xyz, np.float32), None))
    return ProteinRecord.from_chains(name, chains)


def read(name: str) -> ProteinRecord:
    path = STRUCTURES / name
    try:
        from pyg_mpnn.io.structure import read_structure
    except ImportError:
        return _biopython_read(path)
    return read_structure(path)
