"""The list of ProteinMPNN's ``pdb_2021aug02`` training set: the rows of ``list.csv`` that
pass the original's filters (``build_training_clusters`` of its ``training/utils.py``), and their
split from ``valid_clusters.txt`` and ``test_clusters.txt``. The entries themselves are read by
:mod:`pyg_mpnn.io.pdb2021`, whose docstring describes the layout.
"""

from __future__ import annotations

import csv
import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

from pyg_mpnn.io.record import SPLITS, ReadError

DEFAULT_DATCUT = "2030-Jan-01"  # training.py's DATCUT


@dataclass(frozen=True)
class ListRow:
    """One row of ``list.csv`` that passed the filters.

    Fields: ``chain_id`` (``"1abc_A"``), ``pdb_id`` (``"1abc"``), ``chain`` (``"A"``),
    ``cluster`` (int), ``split`` (``"train"``/``"valid"``/``"test"``), ``hash`` (str, kept with
    its leading zeros), ``length`` (residues of ``SEQUENCE``), ``resolution`` (float, NaN when
    none), ``date`` (deposition, ``datetime.date``).
    """

    chain_id: str
    pdb_id: str
    chain: str
    cluster: int
    split: str
    hash: str
    length: int
    resolution: float
    date: _dt.date


def parse_date(value) -> _dt.date:
    """``datetime.date`` from a date, ISO ``YYYY-MM-DD`` or ``YYYY-Mon-DD`` (``2030-Jan-01``)."""
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    text = str(value).strip()
    for fmt in ("%Y-%m-%d", "%Y-%b-%d", "%d-%b-%Y", "%Y/%m/%d", "%Y%m%d"):
        try:
            return _dt.datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    try:  # the original uses dateutil; accept whatever it accepts when it is installed
        from dateutil import parser
    except ImportError:
        raise ValueError(f"unrecognised date {text!r}") from None
    return parser.parse(text).date()


def _read_cluster_ids(path: Path) -> set[int]:
    try:
        return {int(line) for line in path.read_text().split()}
    except (OSError, ValueError) as exc:
        raise ReadError(str(path), f"cannot read cluster ids ({exc})") from exc


def load_list(
    root,
    rescut: float | None = 3.5,
    datcut=DEFAULT_DATCUT,
    homo_cutoff: float = 0.70,
    keep_nan_resolution: bool = False,
) -> list[ListRow]:
    """The rows of ``root/list.csv`` that pass the original's filters, with their split.

    ``rescut``: keep ``RESOLUTION <= rescut``; ``None`` = no upper limit. A ``nan``
    resolution (NMR, no resolution recorded) never passes, whatever ``rescut`` is, as in the
    original (``float(r[2]) <= RESCUT`` is False for NaN), unless ``keep_nan_resolution``.
    ``datcut``: keep ``DEPOSITION <= datcut`` (str or date); ``None`` keeps all.
    ``homo_cutoff`` is not used by the list; it is accepted so that one parameter set
    (like the original's ``params``) can be passed to every function here.
    Cheap: reads only the three text files. Raises :class:`ReadError` on a malformed file.
    """
    del homo_cutoff
    root = Path(root)
    valid_ids = _read_cluster_ids(root / "valid_clusters.txt")
    test_ids = _read_cluster_ids(root / "test_clusters.txt")
    cut = parse_date(datcut) if datcut is not None else None
    path = root / "list.csv"
    rows = []
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            next(reader, None)  # header
            for line_no, r in enumerate(reader, start=2):
                if not r:
                    continue
                try:
                    chain_id, deposition, res, hsh, cluster, seq = r[:6]
                    resolution = float(res)
                    date = parse_date(deposition)
                    cluster = int(cluster)
                except ValueError as exc:
                    raise ReadError(str(path), f"line {line_no}: {exc}") from exc
                if resolution != resolution:  # NaN
                    if not keep_nan_resolution:
                        continue
                elif rescut is not None and resolution > rescut:
                    continue
                if cut is not None and date > cut:
                    continue
                pdb_id, _, chain = chain_id.partition("_")
                split = (
                    "valid" if cluster in valid_ids else "test" if cluster in test_ids else "train"
                )
                rows.append(
                    ListRow(
                        chain_id, pdb_id, chain, cluster, split, hsh, len(seq), resolution, date
                    )
                )
    except OSError as exc:
        raise ReadError(str(path), f"cannot read ({exc})") from exc
    return rows


def clusters_by_split(rows: list[ListRow]) -> dict[str, dict[int, list[ListRow]]]:
    """``{split: {cluster: [rows]}}``: the original's train/valid/test dictionaries
    (training samples one cluster, then one chain of it)."""
    out: dict[str, dict[int, list[ListRow]]] = {s: {} for s in SPLITS}
    for row in rows:
        out[row.split].setdefault(row.cluster, []).append(row)
    return out
