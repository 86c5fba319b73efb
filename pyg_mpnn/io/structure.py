"""Read PDB, mmCIF, PQR and PDBQT files (plain or gzipped) into a :class:`ProteinRecord`.

``read_structure(path)`` returns every protein chain of the file, all marked ``designed``.
Parsing goes through Bio.PDB (``PDBParser``, ``MMCIFParser``, ``PDBParser(is_pqr=True)``),
except for PQR files whose ATOM lines are not column-aligned (no chain column, as written by
some MD tools); those are read by a small whitespace-splitting parser in this module. The
text is read, its format detected and reduced before parsing by
:mod:`pyg_mpnn.io.structure_text`.

Rules (they match ``shared/data/structures/chains.tsv`` except where noted):

* The format is decided by content: gzip by its magic bytes; mmCIF by a ``data_`` block or
  ``_atom_site.`` items; PDB-like text by ``ATOM``/``HETATM`` records. Among PDB-like files,
  PQR is recognised by the ``.pqr`` extension or by ATOM lines ending in two decimal numbers
  (charge, radius) instead of occupancy/B-factor/element, PDBQT by the ``.pdbqt`` extension
  or AutoDock ``ROOT``/``BRANCH``/``TORSDOF`` records (it is parsed as PDB).
* First model only (PDB text is cut at the first ``ENDMDL``; mmCIF rows of later models are
  dropped before parsing, which also keeps NMR ensembles fast).
* Alternate locations: per backbone atom, the highest occupancy wins (first in file on a
  tie). A point mutation (two residue names at one position) keeps the conformer whose
  backbone atoms have the highest occupancy (first in file on a tie).
* A chain is a protein chain if it holds at least one residue with one of the 20 standard
  amino-acid names. Its residues are those standard residues (whatever atoms they have) plus
  non-standard residues that have backbone N, CA and C atoms and belong to the polymer
  (written as ATOM, or HETATM placed before the chain's last standard residue, or
  peptide-bonded to the residue before; a ligand such as SAH after the chain is left out):
  they are read as their parent (``MSE`` -> ``M``, see
  :data:`pyg_mpnn.alphabet.MODIFIED_TO_PARENT`) or ``X``. Waters, ligands, caps and
  nucleotides are left out. Non-standard residues and their names are kept in
  ``meta["nonstandard_residues"]`` (``{(chain_id, residue_id): resname}``, still valid after
  ``select_chains``). ``chains.tsv`` leaves these residues out; that is the one intended
  difference from it.
* Speed: before Bio.PDB parses, the text is reduced to what this reader uses (first model,
  no waters, per residue only N/CA/C/O plus its first atom line); results are identical.
* One residue per (author number, insertion code) within a chain, first occurrence wins;
  residues keep file order; insertion codes are kept in ``residue_ids`` (``"52A"``).
* Missing backbone atoms are NaN; residues are never dropped for that (CA-only files give
  full-length, fully masked records).
* Chain ids are kept as in the file (mmCIF: ``auth_asym_id``); a blank id becomes ``_``.

Errors raise :class:`ReadError` naming the file: empty file, truncated or corrupt gzip,
binary or non-structure text, unparsable records, no protein chain, or no backbone atom at all.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyg_mpnn.alphabet import THREE_TO_ONE, residue_letter
from pyg_mpnn.io.record import BACKBONE_ATOMS, ProteinRecord, ReadError
from pyg_mpnn.io.structure_text import (
    BACKBONE_SET,
    WATER_NAMES,
    detect_format,
    first_model_mmcif,
    first_model_pdb_lines,
    pqr_is_column_aligned,
    read_text,
)

STRUCTURE_EXTENSIONS = (".pdb", ".ent", ".cif", ".mmcif", ".pqr", ".pdbqt", ".brk", ".txt")
BLANK_CHAIN = "_"
PEPTIDE_BOND_MAX = 2.0  # Å, C(i-1)-N(i); the data README's chain-break threshold


@dataclass
class ParsedResidue:
    """One residue as read from a file, before selection into a record.

    ``atoms`` maps an atom name to its alternatives ``(occupancy, xyz)`` in file order;
    only backbone atoms carry alternatives, other names map to an empty list.
    """

    resseq: int
    icode: str
    resname: str
    hetero: bool = False
    atoms: dict = field(default_factory=dict)

    def backbone(self) -> np.ndarray:
        """``[4, 3]`` N, CA, C, O; the highest-occupancy alternative, NaN if absent."""
        out = np.full((4, 3), np.nan, dtype=np.float32)
        for k, atom_name in enumerate(BACKBONE_ATOMS):
            alternatives = self.atoms.get(atom_name)
            if alternatives:
                out[k] = _highest_occupancy(alternatives)[1]
        return out

    def backbone_occupancy(self) -> float:
        """Sum of the best occupancy of each backbone atom (used to pick point mutations)."""
        total = 0.0
        for atom_name in BACKBONE_ATOMS:
            alternatives = self.atoms.get(atom_name)
            if alternatives:
                total += _highest_occupancy(alternatives)[0]
        return total


def _highest_occupancy(alternatives):
    """The ``(occupancy, xyz)`` with the highest occupancy; the first one on a tie."""
    best = alternatives[0]
    for alt in alternatives[1:]:
        if alt[0] > best[0]:
            best = alt
    return best


def structure_name(path) -> str:
    """File name without ``.gz`` and without a structure extension (``1abc.pdb.gz`` -> ``1abc``)."""
    name = Path(path).name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    lower = name.lower()
    for ext in STRUCTURE_EXTENSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem if "." in name else name


def _chains_from_biopython(structure) -> list[tuple[str, list[ParsedResidue]]]:
    """``[(chain_id, residues)]`` of the first model of a Bio.PDB structure."""
    models = list(structure)
    if not models:
        return []
    chains = []
    for chain in models[0]:
        residues = []
        for residue in chain:
            if residue.is_disordered() == 2:  # point mutation: one Residue per name
                conformers = [_residue_from_biopython(r) for r in residue.child_dict.values()]
                best = conformers[0]
                for conf in conformers[1:]:
                    if conf.backbone_occupancy() > best.backbone_occupancy():
                        best = conf
                residues.append(best)
            else:
                residues.append(_residue_from_biopython(residue))
        chains.append((chain.id, residues))
    return chains


def _residue_from_biopython(residue) -> ParsedResidue:
    hetflag, resseq, icode = residue.id
    parsed = ParsedResidue(
        int(resseq), icode.strip(), residue.resname.strip(), hetero=hetflag.strip() != ""
    )
    for atom in residue:
        if atom.get_id() not in BACKBONE_SET:
            parsed.atoms[atom.get_id()] = []
            continue
        children = atom.child_dict.values() if atom.is_disordered() else (atom,)
        parsed.atoms[atom.get_id()] = [
            (a.occupancy if a.occupancy is not None else 0.0, np.asarray(a.coord, np.float32))
            for a in children
        ]
    return parsed


def _chains_from_whitespace_pqr(text: str, source: str) -> list[tuple[str, list[ParsedResidue]]]:
    """Parse ``ATOM serial name resname [chain] resseq[icode] x y z charge radius`` lines.

    For PQR files whose fields are separated by blanks rather than aligned to PDB columns.
    Only the first model is read; a residue number seen before in the same chain with a
    different name is skipped (first occurrence wins), with the same name it is merged.
    """
    chains: dict[str, dict[tuple[int, str], ParsedResidue]] = {}
    current_key = None
    skip_current = False
    for lineno, ln in enumerate(text.splitlines(), 1):
        if ln.startswith("ENDMDL"):
            break
        if not ln.startswith(("ATOM", "HETATM")):
            continue
        tokens = ln.split()
        if len(tokens) == 10:
            chain_id, seq_token = "", tokens[4]
        elif len(tokens) == 11:
            chain_id, seq_token = tokens[4], tokens[5]
        else:
            raise ReadError(
                source,
                f"line {lineno}: PQR ATOM record with {len(tokens)} fields (expected 10 or 11)",
            )
        atom_name, resname = tokens[2], tokens[3]
        match = re.fullmatch(r"(-?\d+)([A-Za-z]?)", seq_token)
        try:
            if match is None:
                raise ValueError(seq_token)
            xyz = np.array([float(t) for t in tokens[-5:-2]], dtype=np.float32)
            radius = float(tokens[-1])
        except ValueError:
            raise ReadError(source, f"line {lineno}: unreadable PQR ATOM record") from None
        if ln.startswith("HETATM") and resname in WATER_NAMES:
            continue
        chain_id = chain_id.strip() or " "
        res_key = (int(match.group(1)), match.group(2))
        residues = chains.setdefault(chain_id, {})
        if (chain_id, res_key, resname) != current_key:
            current_key = (chain_id, res_key, resname)
            existing = residues.get(res_key)
            if existing is None:
                residues[res_key] = ParsedResidue(
                    res_key[0], res_key[1], resname, hetero=ln.startswith("HETATM")
                )
                skip_current = False
            else:
                skip_current = existing.resname != resname
        if skip_current:
            continue
        atoms = residues[res_key].atoms
        if atom_name not in atoms:  # same convention as PDB: occupancy slot holds the radius
            atoms[atom_name] = [(radius, xyz)]
    return [(cid, list(res.values())) for cid, res in chains.items()]


def _has_n_ca_c(residue: ParsedResidue) -> bool:
    return all(name in residue.atoms for name in ("N", "CA", "C"))


def _peptide_bonded(previous: np.ndarray | None, current: np.ndarray) -> bool:
    """C of the previous residue within 2.0 Å of N of this one (backbones ``[4, 3]``)."""
    if previous is None:
        return False
    distance = float(np.linalg.norm(previous[2] - current[0]))
    return distance <= PEPTIDE_BOND_MAX


def _polymer_residues(residues: list[ParsedResidue]) -> list[tuple[ParsedResidue, np.ndarray]]:
    """The residues of a protein chain that belong to the polymer, with their backbones.

    Standard amino acids always; non-standard residues with N, CA and C when written as ATOM,
    when they come before the chain's last standard residue (inside the polymer; ligands
    follow it), or when peptide-bonded to the residue before them (a modified C-terminus).
    Waters never. One residue per (number, insertion code): the first occurrence.
    """
    last_standard = max(i for i, r in enumerate(residues) if r.resname in THREE_TO_ONE)
    kept = []
    seen = set()
    previous = None
    for i, residue in enumerate(residues):
        key = (residue.resseq, residue.icode)
        if key in seen or residue.resname in WATER_NAMES:
            continue
        standard = residue.resname in THREE_TO_ONE
        if not standard and not _has_n_ca_c(residue):
            continue
        backbone = residue.backbone()
        if not (
            standard
            or not residue.hetero
            or i < last_standard
            or _peptide_bonded(previous, backbone)
        ):
            continue
        seen.add(key)
        kept.append((residue, backbone))
        previous = backbone
    return kept


def _record_from_chains(name: str, parsed_chains, source: str, meta: dict) -> ProteinRecord:
    chains = []
    nonstandard, nonfinite = {}, {}
    for chain_id, residues in parsed_chains:
        if not any(r.resname in THREE_TO_ONE for r in residues):
            continue
        chain_name = chain_id.strip() or BLANK_CHAIN
        letters, coords, residue_ids = [], [], []
        for residue, backbone in _polymer_residues(residues):
            residue_id = f"{residue.resseq}{residue.icode}"
            if residue.resname not in THREE_TO_ONE:
                nonstandard[(chain_name, residue_id)] = residue.resname
            nan = [
                a
                for a in BACKBONE_ATOMS
                if any(not np.isfinite(xyz).all() for _, xyz in residue.atoms.get(a, ()))
            ]
            if nan:  # written in the file as NaN: unlike a missing atom, a problem to report
                nonfinite[(chain_name, residue_id)] = nan
            letters.append(residue_letter(residue.resname))
            coords.append(backbone)
            residue_ids.append(residue_id)
        chains.append((chain_name, "".join(letters), np.stack(coords), residue_ids))
    if not chains:
        raise ReadError(
            source,
            "no protein chain (no residue with one of the 20 standard amino-acid names)",
            "no protein chain",
        )
    ids = [c[0] for c in chains]
    if len(set(ids)) != len(ids):  # cannot happen with Bio.PDB, guard the record's invariant
        raise ReadError(source, f"chain ids repeat after mapping blanks to '_': {ids}")
    record = ProteinRecord.from_chains(name, chains, meta=dict(meta))
    if not np.isfinite(record.coords).any():
        raise ReadError(
            source, "no backbone atom (N, CA, C or O) in any protein chain", "no complete backbone"
        )
    record.meta["nonstandard_residues"] = nonstandard
    if nonfinite:  # read (and removed) by prepare's filter, which reports them per residue
        record.meta["nonfinite_atoms"] = nonfinite
    return record


def read_structure(path) -> ProteinRecord:
    """Read all protein chains of a PDB/mmCIF/PQR/PDBQT file (plain or gzipped).

    Args:
        path: the file; its format is sniffed from the content (see the module docstring).

    Returns:
        A :class:`ProteinRecord` named after the file (``structure_name``), every chain
        designed, with ``residue_ids`` and ``meta`` = ``{"source", "path", "format",
        "gzipped", "parser", "nonstandard_residues"}``.

    Raises:
        ReadError: the file cannot be read as a structure with at least one protein chain.
    """
    path = Path(path)
    source = str(path)
    text, gzipped = read_text(path)
    fmt = detect_format(text, path)
    name = structure_name(path)
    meta = {
        "source": source,
        "path": source,
        "format": fmt,
        "gzipped": gzipped,
        "parser": "biopython",
    }
    try:
        if fmt == "pqr" and not pqr_is_column_aligned(text):
            meta["parser"] = "whitespace"
            chains = _chains_from_whitespace_pqr(text, source)
        else:
            chains = _chains_from_biopython(_parse_biopython(text, fmt))
    except ReadError:
        raise
    except Exception as exc:  # Bio.PDB raises many types on malformed input
        raise ReadError(source, f"{fmt} parse failed: {type(exc).__name__}: {exc}") from None
    return _record_from_chains(name, chains, source, meta)


def _parse_biopython(text: str, fmt: str):
    from Bio.PDB import MMCIFParser, PDBParser  # here: a command's --help needs no Bio.PDB

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "mmcif":
            handle = io.StringIO(first_model_mmcif(text))
            return MMCIFParser(QUIET=True).get_structure("s", handle)
        handle = io.StringIO(first_model_pdb_lines(text))
        return PDBParser(QUIET=True, is_pqr=(fmt == "pqr")).get_structure("s", handle)
