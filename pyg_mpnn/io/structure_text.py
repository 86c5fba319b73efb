"""The text of a structure file before Bio.PDB parses it: read (gunzipped), its format
detected, and reduced to the first model and the atoms :mod:`pyg_mpnn.io.structure` uses (see
the rules there: format by content, first model only, speed).
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

from pyg_mpnn.io.record import BACKBONE_ATOMS, ReadError

WATER_NAMES = frozenset({"HOH", "WAT", "DOD", "H2O", "TIP", "TIP3", "SOL", "T3P", "SPC"})
BACKBONE_SET = frozenset(BACKBONE_ATOMS)
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


def read_text(path: Path) -> tuple[str, bool]:
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


def pqr_is_column_aligned(text: str) -> bool:
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


def first_model_pdb_lines(text: str) -> str:
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


def first_model_mmcif(text: str) -> str:
    """A minimal mmCIF for Bio.PDB: the data line and the ``_atom_site`` loop, reduced.

    Rows of later models and of waters are dropped and, as for PDB text, within a residue
    only N/CA/C/O and the residue's first row are kept. Other categories are dropped (Bio.PDB
    only reads optional header items from them). When the loop is not one row per line
    (values over several lines) or is absent, the text is returned unchanged and Bio.PDB
    reads all of it (same result, slower).
    """
    lines = text.splitlines()
    loop = _atom_site_loop(lines)
    if loop is None:
        return text
    i, columns = loop
    data_line = next((ln for ln in lines if ln.startswith("data_")), "data_structure")
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


def _atom_site_loop(lines: list[str]) -> tuple[int, list[str]] | None:
    """``(index of the first row, column names)`` of the ``_atom_site`` loop; ``None`` when
    the text has none."""
    n = len(lines)
    start = next(
        (
            i + 1
            for i in range(n - 1)
            if lines[i].strip() == "loop_" and lines[i + 1].startswith("_atom_site.")
        ),
        None,
    )
    if start is None:
        return None
    i, columns = start, []
    while i < n and lines[i].startswith("_atom_site."):
        columns.append(lines[i].split()[0][len("_atom_site.") :])
        i += 1
    return i, columns
