"""The pdb_2021aug02 reader against the real-layout sample in ``shared/data/pdb_2021aug02_format``.

Expected values come from the data files themselves (list.csv, cluster files, the .pt files
read here with torch) and from the counts stated in the data README, not from the reader.
"""

import csv
import datetime
import random
import shutil

import numpy as np
import pytest
import torch
from testdata import need_shared

from pyg_mpnn.io.pdb2021 import MAX_COPIES, his_tag_slice, iter_pdb2021, load_assembly, load_list
from pyg_mpnn.io.record import ProteinRecord, ReadError, to_data


@pytest.fixture(scope="module")
def root():
    return need_shared("pdb_2021aug02_format/list.csv").parent


def _list_rows(root):
    with open(root / "list.csv", newline="") as f:
        return list(csv.reader(f))[1:]


def spec_split(root, rescut, datcut):
    """The original's filter rules, written out: {chain_id: split}, in file order.

    ``float(RESOLUTION) <= rescut`` (NaN never passes) and ``DEPOSITION <= datcut``; the split
    is valid if the cluster is in valid_clusters.txt, else test if in test_clusters.txt.
    """
    valid = {int(x) for x in (root / "valid_clusters.txt").read_text().split()}
    test = {int(x) for x in (root / "test_clusters.txt").read_text().split()}
    out = {}
    for r in _list_rows(root):
        if not float(r[2]) <= rescut:
            continue
        if datetime.date.fromisoformat(r[1]) > datcut:
            continue
        c = int(r[4])
        out[r[0]] = "valid" if c in valid else "test" if c in test else "train"
    return out


def test_list_filters_match_spec_and_readme(root):
    rows = load_list(root)  # training.py defaults: RESCUT 3.5, DATCUT 2030-Jan-01
    expected = spec_split(root, 3.5, datetime.date(2030, 1, 1))
    assert [r.chain_id for r in rows] == list(expected)
    assert {r.chain_id: r.split for r in rows} == expected
    # README: 47 / 7 / 9 clusters = 79 / 12 / 12 chains
    for split, n_clusters, n_chains in (("train", 47, 79), ("valid", 7, 12), ("test", 9, 12)):
        sel = [r for r in rows if r.split == split]
        assert len(sel) == n_chains
        assert len({r.cluster for r in sel}) == n_clusters
    # fields carried from list.csv
    raw = {r[0]: r for r in _list_rows(root)}
    for r in rows:
        src = raw[r.chain_id]
        assert r.hash == src[3] and len(r.hash) == 6  # leading zeros kept
        assert r.length == len(src[5]) and r.cluster == int(src[4])
        assert r.resolution == float(src[2]) and r.resolution <= 3.5
        assert r.pdb_id + "_" + r.chain == r.chain_id


def test_list_date_cut_without_resolution_cut(root):
    cut = datetime.date(2021, 8, 2)
    expected = spec_split(root, float("inf"), cut)
    assert len(expected) == 123  # README
    for rescut in (None, float("inf")):
        rows = load_list(root, rescut=rescut, datcut="2021-08-02")
        assert [r.chain_id for r in rows] == list(expected)
    assert len(load_list(root, rescut=None, datcut=None, keep_nan_resolution=True)) == len(
        _list_rows(root)
    )
    # DATCUT written as training.py writes it
    assert len(load_list(root, rescut=None, datcut="2021-Aug-02")) == 123


def test_iter_yields_one_record_per_filtered_row(root):
    expected = spec_split(root, 3.5, datetime.date(2030, 1, 1))
    items = list(iter_pdb2021(root))
    errors = [x for x in items if isinstance(x, ReadError)]
    assert not errors, [str(e) for e in errors]
    assert [x.name for x in items] == list(expected)
    raw = {r[0]: r for r in _list_rows(root)}
    for rec in items:
        assert isinstance(rec, ProteinRecord)
        assert rec.meta["split"] == expected[rec.name]
        src = raw[rec.name]
        assert rec.meta["cluster"] == int(src[4]) and rec.meta["hash"] == src[3]
        assert rec.meta["date"] == src[1] and rec.meta["resolution"] == float(src[2])
        assert rec.meta["source"].endswith(f"{rec.name.split('_')[0]}.pt")
        assert len(set(rec.chain_ids)) == len(rec.chain_ids)  # copy ids distinct
        assert rec.designed.any()
        assert rec.coords.shape == (rec.num_residues, 4, 3)
    valid_only = list(iter_pdb2021(root, splits="valid"))
    assert [x.name for x in valid_only] == [k for k, v in expected.items() if v == "valid"]


def _entry(root, pdb_id):
    prefix = root / "pdb" / pdb_id[1:3] / pdb_id
    meta = torch.load(f"{prefix}.pt", weights_only=True)
    chains = {c: torch.load(f"{prefix}_{c}.pt", weights_only=True) for c in meta["chains"]}
    return meta, chains


def _pairwise(x):
    t = torch.from_numpy(np.asarray(x, np.float64))
    return torch.cdist(t, t).numpy()


@pytest.mark.parametrize("chain_id", ["3wip_A", "1ql2_A", "5i55_A", "4oyn_A", "1ncb_A"])
def test_assembly_copies_are_rigid_transforms_and_distinct(root, chain_id):
    rec = load_assembly(root, chain_id)
    meta, chains = _entry(root, chain_id.split("_")[0])
    assert len(rec.meta["copies"]) == len(rec.chain_ids) > 1
    ca_all, copy_of = [], []
    for ci, (cid, (c, k, i)) in enumerate(zip(rec.chain_ids, rec.meta["copies"])):
        assert cid.split("-")[0] == c
        sel = rec.chain_index == ci
        orig = chains[c]["xyz"][:, :4].numpy()
        assert rec.chain_seq(ci) == chains[c]["seq"]  # no His-tag in these entries
        got = rec.coords[sel]
        # the operator of gen row k, index i, applied to the chain file's backbone
        xf = meta[f"asmb_xform{k}"][i].numpy().astype(np.float64)
        want = orig.astype(np.float64) @ xf[:3, :3].T + xf[:3, 3]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(orig))
        np.testing.assert_allclose(got, want, atol=2e-3, equal_nan=True)
        # rigid: CA-CA distances of the copy equal those of the input chain
        ca, ca0 = got[:, 1], orig[:, 1]
        ok = np.isfinite(ca).all(1)
        np.testing.assert_allclose(_pairwise(ca[ok]), _pairwise(ca0[ok]), atol=2e-3)
        ca_all.append(ca[ok])
        copy_of.append(np.full(ok.sum(), ci))
    ca_all, copy_of = np.concatenate(ca_all), np.concatenate(copy_of)
    d = _pairwise(ca_all)
    d[copy_of[:, None] == copy_of[None]] = np.inf
    assert d.min() > 1.0  # no two copies collapse onto each other


def test_homo_oligomer_all_copies_designed(root):
    rec = load_assembly(root, "3wip_A")
    assert rec.chain_ids == ["A", "B", "C", "D", "E"]  # assembly 1 holds A-E, one operator
    assert rec.designed.all()
    rec = load_assembly(root, "1f2n_A")  # 60 operators x 3 identical chains
    assert len(rec.chain_ids) == 180 and rec.designed.all()
    lengths = {r[0]: len(r[5]) for r in _list_rows(root)}
    assert rec.num_residues == 60 * sum(lengths[f"1f2n_{c}"] for c in "ABC")


def test_hetero_complex_designs_query_and_identical_partners(root):
    seqs = {r[0]: r[5] for r in _list_rows(root)}
    for query in ("1igy_A", "1igy_B"):  # antibody: two light (A, C) and two heavy (B, D)
        rec = load_assembly(root, query)
        assert sorted(rec.chain_ids) == ["A", "B", "C", "D"]
        for ci, cid in enumerate(rec.chain_ids):
            same = seqs[f"1igy_{cid}"] == seqs[query]
            assert rec.designed[ci] == same, (query, cid)
    rec = load_assembly(root, "3sn6_B")  # GPCR-G protein complex: five different chains
    assert rec.chain_ids == ["A", "B", "C", "D", "E"]
    assert rec.designed.tolist() == [False, True, False, False, False]
    # 3sn6_B starts MHHHHHHG: get_pdbs' rule "HHHHHH at [1:7]" cuts the first 7 residues
    assert seqs["3sn6_B"].startswith("MHHHHHH")
    assert rec.chain_seq("B") == seqs["3sn6_B"][7:]
    full = load_assembly(root, "3sn6_B", trim_his_tags=False)
    assert full.chain_seq("B") == seqs["3sn6_B"]
    d = to_data(rec)
    assert int(d.design_mask.sum()) == len(seqs["3sn6_B"]) - 7


def test_his_tag_rules():
    body = "MKTAYIAKQR"
    assert his_tag_slice(body) == (0, 10)
    assert his_tag_slice(body + "HHHHHH") == (0, 10)
    assert his_tag_slice("HHHHHH" + body) == (6, 16)
    assert his_tag_slice("MHHHHHHG" + body) == (7, 18)
    # 7 trailing H: rules [-6:] and [-7:-1] both fire on the uncut sequence (cuts 6 + 7)
    assert his_tag_slice(body + "HHHHHHH") == (0, 4)
    start, stop = his_tag_slice("HHHHHH")  # nothing left
    assert stop <= start


def test_chain_in_no_assembly_comes_alone(root):
    rec = load_assembly(root, "1mf6_A")
    _, chains = _entry(root, "1mf6")
    assert rec.chain_ids == ["A"] and rec.designed.tolist() == [True]
    assert rec.meta["assembly_id"] is None and rec.meta["assembly_candidates"] == []
    np.testing.assert_array_equal(rec.coords, chains["A"]["xyz"][:, :4].numpy())
    assert rec.seq == chains["A"]["seq"]


def test_assembly_choice(root):
    first = load_assembly(root, "1ql2_A")
    assert first.meta["assembly_candidates"] == ["1", "2", "HAU"]
    assert first.meta["assembly_id"] == "1" and len(first.chain_ids) == 39  # 13 ops x 3
    hau = load_assembly(root, "1ql2_A", assembly_choice="HAU")
    assert hau.meta["assembly_id"] == "HAU" and len(hau.chain_ids) == 3
    assert load_assembly(root, "1ql2_A", assembly_choice=1).meta["assembly_id"] == "2"
    picks = {
        load_assembly(root, "1ql2_A", assembly_choice=random.Random(s)).meta["assembly_id"]
        for s in range(12)
    }
    assert picks <= {"1", "2", "HAU"} and len(picks) > 1
    with pytest.raises(ReadError):
        load_assembly(root, "1ql2_A", assembly_choice="7")


def test_too_many_copies_dropped_only_when_filters_let_it_through(root):
    names = [x.name if isinstance(x, ProteinRecord) else x.source for x in iter_pdb2021(root)]
    assert not any("3j6r" in n for n in names)  # 9.1 A: removed by RESCUT 3.5 before loading
    items = list(iter_pdb2021(root, rescut=10.0, splits=None))
    dropped = [x for x in items if isinstance(x, ReadError)]
    assert len(dropped) == 6  # 3j6r_A..F: 60 operators x 6 chains = 360 >= 352
    for err in dropped:
        assert err.source.endswith("3j6r.pt") and "360 chain copies" in err.reason
        assert str(MAX_COPIES) in err.reason
    rec = load_assembly(root, "3j6r_A", max_copies=None)
    assert len(rec.chain_ids) == 360


def _copy_entries(root, dst, pdb_ids):
    dst.mkdir()
    for name in ("valid_clusters.txt", "test_clusters.txt"):
        shutil.copy(root / name, dst / name)
    with open(root / "list.csv") as f:
        lines = f.readlines()
    keep = [ln for ln in lines[1:] if ln.split("_")[0] in pdb_ids]
    (dst / "list.csv").write_text(lines[0] + "".join(keep))
    for p in pdb_ids:
        (dst / "pdb" / p[1:3]).mkdir(parents=True)
        for f in (root / "pdb" / p[1:3]).glob(f"{p}*.pt"):
            shutil.copy(f, dst / "pdb" / p[1:3] / f.name)
    return [ln.split(",")[0] for ln in keep]


def test_corrupt_and_missing_files_give_read_errors(root, tmp_path):
    dst = tmp_path / "pdb2021"
    ids = _copy_entries(root, dst, ["1a7g", "1a8o", "1aki", "1mf6", "1igy"])
    bad_chain = dst / "pdb" / "a8" / "1a8o_A.pt"
    bad_chain.write_bytes(b"\x00garbage, not a torch file" * 10)
    bad_meta = dst / "pdb" / "ak" / "1aki.pt"
    bad_meta.write_bytes(bad_meta.read_bytes()[:200])  # truncated zip
    missing = dst / "pdb" / "mf" / "1mf6_A.pt"
    missing.unlink()
    items = list(iter_pdb2021(dst, rescut=None, keep_nan_resolution=True))
    assert len(items) == len(ids) == 8
    by_row = dict(zip(ids, items))
    assert isinstance(by_row["1a8o_A"], ReadError)
    assert by_row["1a8o_A"].source == str(bad_chain) and "1a8o_A.pt" in str(by_row["1a8o_A"])
    assert isinstance(by_row["1aki_A"], ReadError) and by_row["1aki_A"].source == str(bad_meta)
    assert isinstance(by_row["1mf6_A"], ReadError) and by_row["1mf6_A"].source == str(missing)
    good = [k for k in ids if k not in ("1a8o_A", "1aki_A", "1mf6_A")]
    assert all(isinstance(by_row[k], ProteinRecord) for k in good)
    assert (
        by_row["1a7g_A"].chain_seq("A")
        == torch.load(dst / "pdb" / "a7" / "1a7g_A.pt", weights_only=True)["seq"]
    )


def test_homo_cutoff_is_strict_as_in_the_original(root):
    meta, _ = _entry(root, "1igy")
    chains = list(meta["chains"])
    sid = float(meta["tm"][chains.index("B"), chains.index("D"), 1])  # heavy chains, ~0.96
    assert 0.7 < sid < 1.0
    at = load_assembly(root, "1igy_B", homo_cutoff=sid)
    below = load_assembly(root, "1igy_B", homo_cutoff=sid - 1e-3)
    designed_at = {c for c, d in zip(at.chain_ids, at.designed) if d}
    designed_below = {c for c, d in zip(below.chain_ids, below.designed) if d}
    assert designed_at == {"B"}  # identity == cutoff is not a homo partner (seqid > HOMO)
    assert designed_below == {"B", "D"}
