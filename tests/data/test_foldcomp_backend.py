"""Foldcomp databases read in place (``prepare --foldcomp-in-place``): against the same
database converted to shards, a database written here from real structures with
``foldcomp.compress``, cluster TSVs, records damaged before indexing, and a user's mistakes.
Resume, coverage across ranks and workers and damaged records in the loader are in
``test_scale.py`` (parametrized over both backends)."""

import gzip
import json
import shutil

import numpy as np
import pytest
from testdata import AFDB, structure

from pyg_mpnn.data.dataset import ProteinDataset
from pyg_mpnn.data.prepare import main as prepare_main
from pyg_mpnn.data.prepare import prepare
from pyg_mpnn.data.store import NoDataset
from pyg_mpnn.io.foldcomp import iter_entries, record_from_fcz, write_database
from pyg_mpnn.io.structure import structure_name

foldcomp = pytest.importorskip("foldcomp")

# single-chain real structures that Foldcomp compresses as they are
SINGLE_CHAIN = [
    "mdanalysistests__1ahsA.pdb.gz",
    "mdanalysistests__1bvyF.pdb.gz",
    "mdanalysistests__1eteA.pdb.gz",
    "mdanalysistests__1i8nA.pdb.gz",
]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The AFDB sample converted to shards and read in place, both with ``--min-plddt 70``."""
    root = tmp_path_factory.mktemp("both")
    db = str(AFDB / "afdb_sample")
    prepare([db], root / "shards", min_plddt=70.0, progress=False)
    prepare([db], root / "inplace", min_plddt=70.0, foldcomp_in_place=True, progress=False)
    return root / "shards", root / "inplace"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """``(database prefix, {name: FCZ bytes})`` written from SINGLE_CHAIN."""
    blobs = {}
    for f in SINGLE_CHAIN:
        path = structure(f)
        text = (gzip.open if f.endswith(".gz") else open)(path, "rt").read()
        name = structure_name(f)
        blobs[name] = foldcomp.compress(name, text)
    db = tmp_path_factory.mktemp("written") / "db"
    assert write_database(db, blobs.items()) == len(SINGLE_CHAIN)
    return db, blobs


def test_in_place_matches_converted(both):
    shards, inplace = both
    meta = json.loads((inplace / "meta.json").read_text())
    assert meta["backend"] == "foldcomp" and meta["databases"] == [str(AFDB / "afdb_sample")]
    assert not (inplace / "shards").exists()
    a, b = ProteinDataset(shards), ProteinDataset(inplace)
    assert b.backend == "foldcomp" and sorted(a.names) == sorted(b.names)
    where = {n: i for i, n in enumerate(b.names)}
    for i, name in enumerate(a.names):
        j = where[name]
        assert a.lengths[i] == b.lengths[j] and abs(a.plddt[i] - b.plddt[j]) < 0.2
        ra, rb = a.record(i), b.record(j)
        assert ra.seq == rb.seq and rb.coords.shape == (b.lengths[j], 4, 3)
        assert np.abs(ra.coords - rb.coords).max() < 0.07  # shards: float16 around the centre
        assert np.abs(ra.plddt - rb.plddt).max() < 0.1
    for root in both:  # the same entries reported below the threshold
        summary = json.loads((root / "summary.json").read_text())
        assert summary["skipped"] == {"low pLDDT": 2}


def test_header_plddt_is_foldcomps(written):
    db, blobs = written
    entries = list(iter_entries(db))
    assert [e.name for e in entries] == list(blobs)
    for e in entries:
        data = foldcomp.get_data(blobs[e.name])
        assert e.length == len(data["residues"]) and e.nbytes == len(blobs[e.name])
        assert abs(e.plddt_mean - np.mean(data["b_factors"])) < 1e-3


def test_written_database_read_by_foldcomp_and_in_place(written, tmp_path):
    db, blobs = written
    with foldcomp.open(str(db)) as opened:  # Foldcomp's own reader takes our layout
        assert [name for name, _ in opened] == list(blobs)
    names = list(blobs)
    tsv = tmp_path / "clusters.tsv"  # two share a cluster, one its own line, one unlisted
    tsv.write_text(f"{names[0]}\t{names[1]}\tx\n{names[1]}\t{names[1]}\n\n{names[2]}\t{names[2]}\n")
    out = prepare([str(db)], tmp_path / "ds", foldcomp_in_place=True, clusters=tsv, progress=False)
    assert out["records"] == 4
    ds = ProteinDataset(tmp_path / "ds")
    cluster = dict(zip(ds.names, ds.clusters.tolist()))
    assert cluster[names[0]] == cluster[names[1]]
    assert len({cluster[names[1]], cluster[names[2]], cluster[names[3]]}) == 3
    assert json.loads((tmp_path / "ds" / "meta.json").read_text())["clustered_entries"] == 3
    for i, name in enumerate(ds.names):
        rec, want = ds.record(i), record_from_fcz(blobs[name], name)
        assert rec.seq == want.seq and np.array_equal(rec.coords, want.coords)
        assert rec.meta["source"] == f"{db.resolve()}:{name}"


def test_records_broken_before_indexing_are_reported(written, tmp_path):
    _, blobs = written
    good = next(iter(blobs.values()))
    entries = [("good", good), ("cut", good[:100]), ("junk", b"not a Foldcomp record")]
    write_database(tmp_path / "db", entries)
    summary = prepare(
        [str(tmp_path / "db")], tmp_path / "ds", foldcomp_in_place=True, progress=False
    )
    assert summary["records"] == 1 and summary["skipped_total"] == 2
    rows = [json.loads(ln) for ln in (tmp_path / "ds" / "skipped.jsonl").read_text().splitlines()]
    by_item = {r["item"].rsplit(":", 1)[-1]: r["reason"] for r in rows}
    start = len(good) + 1
    assert by_item["cut"].startswith(f"bytes {start}..{start + 101}: truncated record")
    assert "no FCMP header" in by_item["junk"]


def test_missing_database_names_it_and_the_fix(written, tmp_path):
    db, _ = written
    copy = tmp_path / "db"
    for suffix in ("", ".index", ".lookup"):
        shutil.copy(f"{db}{suffix}", f"{copy}{suffix}")
    prepare([str(copy)], tmp_path / "ds", foldcomp_in_place=True, progress=False)
    copy.unlink()
    with pytest.raises(NoDataset, match=rf"database {copy} is missing.*--foldcomp-in-place"):
        ProteinDataset(tmp_path / "ds")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{fixture}", "--foldcomp-in-place"], "reads Foldcomp databases: {fixture} is not one"),
        (["{db}", "--clusters", "{tsv}"], "--clusters is read with --foldcomp-in-place only"),
        (["{db}", "--foldcomp-in-place", "--clusters", "{bad}"], "{bad}: line 1 is not member"),
    ],
)
def test_user_mistakes_one_line_exit_2(written, tmp_path, capsys, argv, message):
    db, _ = written
    (tmp_path / "bad.tsv").write_text("only-one-column\n")
    (tmp_path / "ok.tsv").write_text("")
    names = dict(
        fixture=str(structure(SINGLE_CHAIN[0])),
        db=str(db),
        tsv=str(tmp_path / "ok.tsv"),
        bad=str(tmp_path / "bad.tsv"),
    )
    argv = [a.format(**names) for a in argv] + ["--out", str(tmp_path / "ds"), "--no-progress"]
    assert prepare_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(**names) in err and "Traceback" not in err
    assert not (tmp_path / "ds").exists()
