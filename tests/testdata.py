"""Where the tests' real data lives (importable from any test module: ``from testdata import ...``).

* ``EMBEDDED``: the embedded dataset ``data/default.jsonl.gz`` (35 real structures).
* ``FIXTURES``: small real structure files under ``tests/fixtures/``, byte-for-byte copies of
  files in the shared data (origin and licence in ``tests/fixtures/SOURCES.tsv``; their rows of
  the shared ``chains.tsv`` in ``tests/fixtures/chains.tsv``), and ``AFDB``, the shared Foldcomp
  database of 24 AlphaFold DB models (``tests/fixtures/afdb``, sources in its MANIFEST.tsv).
* ``SHARED_DATA``: the large shared sets, ``$PYG_MPNN_SHARED_DATA`` or else ``../shared/data``
  beside the repo root. Tests that need them skip, naming what they need, when they are absent.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from _shared_audit import note_shared_use

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = REPO / "data" / "default.jsonl.gz"
FIXTURES = REPO / "tests" / "fixtures"
# a Foldcomp database of 24 AlphaFold DB models (copy of shared/data/afdb without models/)
AFDB = FIXTURES / "afdb"
SHARED_DATA = Path(os.environ.get("PYG_MPNN_SHARED_DATA") or REPO.parent / "shared" / "data")
SHARED_STRUCTURES = SHARED_DATA / "structures"


def need_shared(what: str) -> Path:
    """``SHARED_DATA / what``; skips the calling test, naming ``what``, when it is absent."""
    path = SHARED_DATA / what
    if not path.exists():
        pytest.skip(f"needs shared data {what} (not at {path}; PYG_MPNN_SHARED_DATA)")
    note_shared_use()
    return path


def structure(name: str) -> Path:
    """A real structure file by its shared-data name: the copy in ``tests/fixtures`` when there
    is one, else the shared file (skipping, naming the file, when that is absent too)."""
    path = FIXTURES / name
    return path if path.is_file() else need_shared(f"structures/{name}")


def fixture_structures() -> list[Path]:
    """Every structure file in ``tests/fixtures``, sorted by name."""
    return sorted(
        p for p in FIXTURES.iterdir() if p.is_file() and not p.name.endswith((".tsv", ".md"))
    )


def ca_trace(src: Path, out: Path) -> Path:
    """Write ``out``: a CA trace of the PDB file ``src`` (plain or gzipped), its ``ATOM`` records
    of CA atoms and nothing else (what a CA-only model designs from)."""
    opener = gzip.open if str(src).endswith(".gz") else open
    with opener(src, "rt") as f:
        lines = [ln for ln in f if ln.startswith("ATOM") and ln[12:16] == " CA "]
    Path(out).write_text("".join(lines) + "END\n")
    return Path(out)
