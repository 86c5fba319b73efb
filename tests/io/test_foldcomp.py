"""The Foldcomp reader against the 24-entry AFDB database (``tests/fixtures/afdb``, a copy of
``shared/data/afdb`` without the source models).

Expected values come from MANIFEST.tsv, the source models in the shared ``afdb/models/`` (read
with Bio.PDB) and the database's own decompressed PDB text, not from the reader.
"""

import csv
import gzip

import numpy as np
import pytest

foldcomp = pytest.importorskip("foldcomp")

from Bio.PDB import MMCIFParser, PDBParser  # noqa: E402
from testdata import AFDB, need_shared  # noqa: E402

from pyg_mpnn.alphabet import THREE_TO_ONE  # noqa: E402
from pyg_mpnn.io.foldcomp import (  # noqa: E402
    FczEntry,
    LowPLDDT,
    is_foldcomp_db,
    iter_entries,
    iter_foldcomp,
)
from pyg_mpnn.io.record import ProteinRecord, ReadError, to_data  # noqa: E402


@pytest.fixture(scope="module")
def afdb():
    return AFDB


@pytest.fixture(scope="module")
def records(afdb):
    return list(iter_foldcomp(afdb / "afdb_sample"))


@pytest.fixture(scope="module")
def manifest(afdb):
    with open(afdb / "MANIFEST.tsv", newline="") as f:
        return {r["name"]: int(r["residues"]) for r in csv.DictReader(f, delimiter="\t")}


@pytest.fixture(scope="module")
def source_ca_bfactors(afdb):
    """{name: CA B-factors} from the database's decompressed PDB text (pLDDT column)."""
    out = {}
    with foldcomp.open(str(afdb / "afdb_sample")) as db:
        for name, pdb in db:
            out[name] = np.array(
                [
                    float(ln[60:66])
                    for ln in pdb.splitlines()
                    if ln.startswith("ATOM") and ln[12:16].strip() == "CA"
                ]
            )
    return out


def test_database_detection(afdb):
    assert is_foldcomp_db(afdb / "afdb_sample")
    assert not is_foldcomp_db(afdb)
    assert not is_foldcomp_db(afdb / "afdb_sample.index")


def test_reads_all_entries_with_manifest_lengths(records, manifest):
    assert len(records) == 24
    assert all(isinstance(r, ProteinRecord) for r in records)
    assert {r.name: r.num_residues for r in records} == manifest
    for r in records:
        assert r.chain_ids == ["A"] and r.designed.tolist() == [True]
        assert r.plddt.shape == (r.num_residues,) and r.plddt.dtype == np.float32
        assert r.mask.all()  # AFDB models are complete
        assert r.meta["source"].endswith(f"afdb_sample:{r.name}")


def test_backbone_geometry(records):
    for r in records:
        x = r.coords.astype(np.float64)
        n_ca = np.linalg.norm(x[:, 0] - x[:, 1], axis=1)
        ca_c = np.linalg.norm(x[:, 1] - x[:, 2], axis=1)
        c_o = np.linalg.norm(x[:, 2] - x[:, 3], axis=1)
        assert abs(n_ca.mean() - 1.46) < 0.03 and abs(ca_c.mean() - 1.52) < 0.03
        assert abs(c_o.mean() - 1.23) < 0.03, r.name  # slot 3 is O, not a side-chain atom


def _source_backbone(path):
    parser = MMCIFParser(QUIET=True) if ".cif" in path.name else PDBParser(QUIET=True)
    with gzip.open(path, "rt") as fh:
        structure = parser.get_structure("x", fh)
    residues = [res for res in next(iter(structure)).get_residues() if res.id[0] == " "]
    seq_3 = [res.get_resname() for res in residues]
    bb = np.array([[res[a].coord for a in ("N", "CA", "C", "O")] for res in residues])
    bfac = np.array([res["CA"].bfactor for res in residues])
    return seq_3, bb, bfac


@pytest.mark.parametrize(
    "name, ext", [("AF-P60713-F1-model_v4", "pdb.gz"), ("AF-O15552-F1-model_v1", "cif.gz")]
)
def test_coordinates_match_source_model(afdb, records, name, ext):
    rec = next(r for r in records if r.name == name)
    seq_3, bb, bfac = _source_backbone(need_shared(f"afdb/models/{name}.{ext}"))
    assert rec.seq == "".join(THREE_TO_ONE[s] for s in seq_3)
    ca_rmsd = np.sqrt(((rec.coords[:, 1] - bb[:, 1]) ** 2).sum(-1).mean())
    assert ca_rmsd < 1.0
    bb_rmsd = np.sqrt(((rec.coords - bb) ** 2).sum(-1).mean())
    assert bb_rmsd < 1.0  # N, C, O too (wrong atom slots would be off by > 1 A)
    np.testing.assert_allclose(rec.plddt, bfac, atol=0.2)


def test_plddt_filter(afdb, source_ca_bfactors):
    threshold = 80.0  # nearest means are 77.7 and 80.8, far beyond Foldcomp's 0.15 error
    expected_low = {n for n, b in source_ca_bfactors.items() if b.mean() < threshold}
    assert 0 < len(expected_low) < 24
    items = list(iter_foldcomp(afdb / "afdb_sample", min_plddt=threshold))
    assert len(items) == 24
    low = [x for x in items if isinstance(x, ReadError)]
    assert all(isinstance(x, LowPLDDT) for x in low)
    assert {x.source.split(":")[-1] for x in low} == expected_low
    for x in low:
        assert x.reason.startswith("mean pLDDT ") and x.reason.endswith("< 80")
        assert abs(x.mean_plddt - source_ca_bfactors[x.source.split(":")[-1]].mean()) < 0.2
    kept = [x for x in items if isinstance(x, ProteinRecord)]
    assert {r.name for r in kept} == set(source_ca_bfactors) - expected_low
    assert all(r.plddt.mean() >= threshold for r in kept)


def test_entries_from_headers(afdb, manifest, source_ca_bfactors):
    """What an in-place index reads without decoding: lengths, mean pLDDT, byte ranges."""
    entries = list(iter_entries(afdb / "afdb_sample"))
    assert all(isinstance(e, FczEntry) for e in entries)
    assert {e.name: e.length for e in entries} == manifest
    offsets = [e.offset for e in entries]
    assert offsets == sorted(offsets)  # the data file is read front to back
    for e in entries:
        assert abs(e.plddt_mean - source_ca_bfactors[e.name].mean()) < 0.2
    low = [e for e in iter_entries(afdb / "afdb_sample", min_plddt=80.0) if isinstance(e, LowPLDDT)]
    assert {e.source.split(":")[-1] for e in low} == {
        n for n, b in source_ca_bfactors.items() if b.mean() < 80.0
    }


def test_fcz_files_and_directory(afdb, tmp_path, manifest):
    names = ["AF-A0A0B7P221-F1-model_v1", "AF-A0A1W2PQ64-F1-model_v4"]
    with foldcomp.open(str(afdb / "afdb_sample"), ids=names, decompress=False) as db:
        blobs = list(db)
    for name, blob in zip(names, blobs):
        (tmp_path / f"{name}.fcz").write_bytes(blob)
    (tmp_path / "bad_garbage.fcz").write_bytes(b"not foldcomp at all" * 20)
    (tmp_path / "bad_truncated.fcz").write_bytes(blobs[1][: len(blobs[1]) // 2])

    single = list(iter_foldcomp(tmp_path / f"{names[0]}.fcz"))
    assert len(single) == 1 and single[0].name == names[0]
    assert single[0].num_residues == manifest[names[0]]

    items = list(iter_foldcomp(tmp_path))  # sorted by file name
    assert [type(x) for x in items] == [ProteinRecord, ProteinRecord, ReadError, ReadError]
    assert [x.name for x in items[:2]] == names
    assert items[2].source.endswith("bad_garbage.fcz")
    assert items[3].source.endswith("bad_truncated.fcz") and "truncated" in items[3].reason
    d = to_data(items[1])
    assert d.num_nodes == manifest[names[1]] and bool(d.design_mask.all())


def test_missing_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(iter_foldcomp(tmp_path / "nothing_here"))
