"""Read PDB, mmCIF, PQR and PDBQT files (plain or gzipped) into a :class:`ProteinRecord`.

``read_structure(path)`` returns every protein chain of the file, all marked ``designed``.
Parsing goes through Bio.PDB (``PDBParser``, ``MMCIFParser``, ``PDBParser(is_pqr=True)``),
except for PQR files whose ATOM lines are not column-aligned (no chain column, as written by
some MD tools); those are read by a small whitespace-splitting parser in this module.

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

import gzip
import io
import re
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pyg_mpnn.alphabet import THREE_TO_ONE, residue_letter
from pyg_mpnn.io.record import BACKBONE_ATOMS, ProteinRecord, ReadError

WATER_NAMES = frozenset({"HOH", "WAT", "DOD", "H2O", "TIP", "TIP3", "SOL", "T3P", "SPC"})
STRUCTURE_EXTENSIONS = (".pdb", ".ent", ".cif", ".mmcif", ".pqr", ".pdbqt", ".brk", ".txt")
BLANK_CHAIN = "_"
BACKBONE_SET = frozenset(BACKBONE_ATOMS)
PEPTIDE_BOND_MAX = 2.0  # Å, C(i-1)-N(i); the data README's chain-break threshold
_MMCIF_RESIDUE_COLUMNS = (
    "auth_asym_id",
    "label_asym_id",
    "auth_seq_id",
    "label_seq_id",
    "pdbx_PDB_ins_code",
    "label_comp_id",
    "pdbx_PDB_model_num",
)

_MMCIF_RE = re.compile(r"^(data_|_atom_site\.)", re.M)
_ATOM_RE = re.compile(r"^(ATOM  |ATOM\s|HETATM)", re.M)
_PDBQT_RE = re.compile(r"^(ROOT|ENDROOT|BRANCH|ENDBRANCH|TORSDOF)\b", re.M)
_PQR_TAIL_RE = re.compile(r"^-?\d*\.\d{3,}$")


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


def _read_text(path: Path) -> tuple[str, bool]:
    """File content as text (gunzipped when it starts with the gzip magic), and whether it was."""
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReadError(source, f"cannot read file ({exc.strerror or exc})") from None
    gzipped = data[:2] == b"\x1f\x8b"
    if gzipped:
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise ReadError(
                source, f"truncated or corrupt gzip data ({exc})", "corrupt or truncated gzip"
            ) from None
    if not data.strip():
        raise ReadError(source, "empty file" + (" (after gunzip)" if gzipped else ""), "empty file")
    if b"\x00" in data[:65536]:
        raise ReadError(source, "binary content, not a text structure file", "not a structure")
    return data.decode("latin-1"), gzipped


def detect_format(text: str, path) -> str:
    """``"mmcif"``, ``"pqr"``, ``"pdbqt"`` or ``"pdb"`` from the content (and extension).

    Raises:
        ReadError: the text has neither mmCIF data nor ATOM/HETATM records.
    """
    lower = Path(path).name.lower()
    if lower.endswith(".gz"):
        lower = lower[:-3]
    head = text.lstrip()[:5]
    if head == "data_" or _MMCIF_RE.search(text):
        return "mmcif"
    if not _ATOM_RE.search(text):
        raise ReadError(
            str(path),
            "no ATOM/HETATM records and no mmCIF data block: not a structure file",
            "not a structure",
        )
    if lower.endswith(".pqr") or _looks_like_pqr(text):
        return "pqr"
    if lower.endswith(".pdbqt") or _PDBQT_RE.search(text):
        return "pdbqt"
    return "pdb"


def _atom_lines(text: str):
    return (ln for ln in text.splitlines() if ln.startswith(("ATOM", "HETATM")))


def _looks_like_pqr(text: str, sample: int = 50) -> bool:
    """ATOM lines end in charge and radius (two decimals with >= 3 places), not occ/B/element."""
    lines = [ln for _, ln in zip(range(sample), _atom_lines(text))]
    if not lines:
        return False
    for ln in lines:
        tokens = ln.split()
        if len(tokens) < 2 or not all(_PQR_TAIL_RE.match(t) for t in tokens[-2:]):
            return False
    return True


def _pqr_is_column_aligned(text: str) -> bool:
    """Whether PQR coordinates sit in PDB columns 31-54 (Bio.PDB can read it) on every line."""
    for ln in _atom_lines(text):
        tokens = ln.split()
        try:
            columns = (float(ln[30:38]), float(ln[38:46]), float(ln[46:54]))
        except ValueError:
            return False
        try:
            split = tuple(float(t) for t in tokens[-5:-2])
        except ValueError:
            continue  # numbers run together: only the columns can be right
        if len(tokens) < 10 or split != columns:
            return False
    return True


def _first_model_pdb_lines(text: str) -> str:
    """The records Bio.PDB needs: first model, no waters, no atoms this reader never uses.

    Within a residue (same chain, name, number, insertion code) only the backbone atoms
    N/CA/C/O and the residue's first atom line are kept; the first line keeps residues that
    have no backbone atom. This halves parsing time and changes nothing in the result.
    """
    keep = []
    in_model = False
    last_residue = None
    for ln in text.splitlines():
        rec = ln[:6]
        if rec.startswith(("ATOM", "HETATM")):
            if rec == "HETATM" and ln[17:20].strip() in WATER_NAMES:
                continue
            residue_key = ln[17:27]
            if residue_key != last_residue or ln[12:16].strip() in BACKBONE_SET:
                keep.append(ln)
                last_residue = residue_key
        elif rec.startswith("MODEL"):
            if in_model:
                break
            in_model = True
            keep.append(ln)
        elif rec.startswith("ENDMDL"):
            keep.append(ln)
            break
        elif rec.startswith("TER"):
            keep.append(ln)
    return "\n".join(keep) + "\nEND\n"


def _first_model_mmcif(text: str) -> str:
    """A minimal mmCIF for Bio.PDB: the data line and the ``_atom_site`` loop, reduced.

    Rows of later models and of waters are dropped and, as for PDB text, within a residue
    only N/CA/C/O and the residue's first row are kept. Other categories are dropped (Bio.PDB
    only reads optional header items from them). When the loop is not one row per line
    (values over several lines) or is absent, the text is returned unchanged and Bio.PDB
    reads all of it (same result, slower).
    """
    lines = text.splitlines()
    n = len(lines)
    data_line = next((ln for ln in lines if ln.startswith("data_")), "data_structure")
    start = next(
        (
            i + 1
            for i in range(n - 1)
            if lines[i].strip() == "loop_" and lines[i + 1].startswith("_atom_site.")
        ),
        None,
    )
    if start is None:
        return text
    i = start
    columns = []
    while i < n and lines[i].startswith("_atom_site."):
        columns.append(lines[i].split()[0][len("_atom_site.") :])
        i += 1
    out = [data_line, "loop_"] + ["_atom_site." + c for c in columns]

    def column(name):
        return columns.index(name) if name in columns else None

    model_col, comp_col, atom_col = (
        column("pdbx_PDB_model_num"),
        column("label_comp_id"),
        column("label_atom_id"),
    )
    residue_cols = [columns.index(c) for c in _MMCIF_RESIDUE_COLUMNS if c in columns]
    first_model = last_residue = None
    for row in lines[i:]:
        if row.startswith(("_", "loop_", "data_", "#")):
            break
        tokens = row.split()
        if len(tokens) != len(columns):
            return text  # a row over several lines, or quoted values with blanks
        if model_col is not None:
            if first_model is None:
                first_model = tokens[model_col]
            elif tokens[model_col] != first_model:
                continue
        if comp_col is not None and tokens[comp_col] in WATER_NAMES:
            continue
        residue_key = [tokens[c] for c in residue_cols]
        if (
            atom_col is not None
            and residue_key == last_residue
            and tokens[atom_col] not in BACKBONE_SET
        ):
            continue
        last_residue = residue_key
        out.append(row)
    return "\n".join(out) + "\n#\n"


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
    text, gzipped = _read_text(path)
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
        if fmt == "pqr" and not _pqr_is_column_aligned(text):
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
            handle = io.StringIO(_first_model_mmcif(text))
            return MMCIFParser(QUIET=True).get_structure("s", handle)
        handle = io.StringIO(_first_model_pdb_lines(text))
        return PDBParser(QUIET=True, is_pqr=(fmt == "pqr")).get_structure("s", handle)
