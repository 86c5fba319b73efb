"""Every option of ``python -m pyg_mpnn.design``, run in-process through ``main``.

Real structures: 5zng (chains A 79 + C 62 residues), 1hvr (HIV protease homodimer, 2 x 99),
1orc (64 residues with insertion codes 56A-56E).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pyg_mpnn.alphabet import ALPHABET
from pyg_mpnn.design import main
from pyg_mpnn.io.jsonl import write_jsonl
from pyg_mpnn.io.structure import read_structure

REPO = Path(__file__).resolve().parents[2]


def run(capsys, *argv):
    rc = main([str(a) for a in argv] + ["--no-progress"])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def fasta(text):
    lines = text.splitlines()
    return list(zip(lines[::2], lines[1::2]))


@pytest.fixture(scope="module")
def zng(structures):
    return structures / "biotite__5zng.pdb"


@pytest.fixture(scope="module")
def hvr(structures):
    return structures / "mdanalysistests__1hvr.pdb"


def test_fasta_header_fields_as_the_original(capsys, zng):
    def design(batch_size: str):
        args = ("--num-seqs", "2", "--temperature", "0.1", "--temperature", "0.3", "--seed", "5")
        return run(capsys, zng, *args, "--batch-size", batch_size)

    rc, out, _ = design("1")
    assert rc == 0
    recs = fasta(out)
    assert len(recs) == 5
    h = recs[0][0]
    assert h.startswith(">biotite__5zng, score=") and "global_score=" in h
    assert "fixed_chains=[], designed_chains=['A', 'C'], model_name=v_48_020, seed=5" in h
    assert [r[0].split(",")[:2] for r in recs[1:]] == [
        [">T=0.1", " sample=1"],
        [">T=0.1", " sample=2"],
        [">T=0.3", " sample=1"],
        [">T=0.3", " sample=2"],
    ]
    for header, seq in recs[1:]:
        fields = dict(kv.split("=") for kv in header[1:].split(", "))
        assert set(fields) == {"T", "sample", "score", "global_score", "seq_recovery"}
        assert 0 < float(fields["score"]) < 4 and 0 <= float(fields["seq_recovery"]) <= 1
        assert [len(p) for p in seq.split("/")] == [79, 62]
    rc, again, _ = design("2")
    assert fasta(again)[0] == recs[0]  # same seed: same native score
    assert len(fasta(again)) == 5


def test_seed_reproducible_and_changes_samples(capsys, zng):
    a = run(capsys, zng, "--num-seqs", "3", "--seed", "1")[1]
    b = run(capsys, zng, "--num-seqs", "3", "--seed", "1")[1]
    c = run(capsys, zng, "--num-seqs", "3", "--seed", "2")[1]
    assert a == b and a != c


def test_chains_fixed_with_insertion_codes_and_design_only(capsys, structures):
    orc = structures / "gemmi__1orc.pdb"
    native = read_structure(orc).seq
    ids = read_structure(orc).residue_ids
    rc, out, _ = run(
        capsys, orc, "--fixed", "A:3-10,56B,60", "--num-seqs", "4", "--temperature", "1.0"
    )
    assert rc == 0
    keep = [i for i, r in enumerate(ids) if r in {str(k) for k in range(3, 11)} | {"56B", "60"}]
    assert len(keep) == 10
    seqs = [s for _, s in fasta(out)[1:]]
    for s in seqs:
        assert all(s[i] == native[i] for i in keep)
    free = [i for i in range(len(native)) if i not in keep]
    assert any(s[i] != native[i] for s in seqs for i in free)
    rc, out, _ = run(
        capsys, orc, "--design-only", "A:56-57", "--num-seqs", "3", "--temperature", "1.0"
    )
    span = [i for i, r in enumerate(ids) if r.startswith("56") or r == "57"]
    assert len(span) == 7  # 56, 56A-E, 57: a range in file order
    for _, s in fasta(out)[1:]:
        assert all(s[i] == native[i] for i in range(len(native)) if i not in span)


def test_fixed_positions_jsonl(capsys, tmp_path, zng):
    path = tmp_path / "fixed.jsonl"
    path.write_text(json.dumps({"biotite__5zng": {"A": [1, 2, 3], "C": list(range(1, 63))}}))
    rc, out, _ = run(capsys, zng, "--fixed-jsonl", path, "--num-seqs", "2", "--temperature", "1.0")
    native = fasta(out)[0][1].split("/")
    for _, s in fasta(out)[1:]:
        a, c = s.split("/")
        assert a[:3] == native[0][:3] and c == native[1] and a != native[0]


def test_homo_oligomer_and_tied_jsonl(capsys, tmp_path, hvr):
    rc, out, _ = run(capsys, hvr, "--homo-oligomer", "--num-seqs", "3", "--temperature", "0.5")
    assert rc == 0
    for _, s in fasta(out)[1:]:
        a, b = s.split("/")
        assert a == b
    tied = tmp_path / "tied.jsonl"
    items = [{"A": [i], "B": [i]} for i in (1, 2, 3, 4)] + [{"A": [6, 7], "B": [6, 7]}]
    tied.write_text(json.dumps({"mdanalysistests__1hvr": items}))
    rc, out, _ = run(capsys, hvr, "--tied-jsonl", tied, "--num-seqs", "3", "--temperature", "1.0")
    seqs = [s.split("/") for _, s in fasta(out)[1:]]
    assert all(a[:4] == b[:4] for a, b in seqs)
    assert all(len({a[5], a[6], b[5], b[6]}) == 1 for a, b in seqs)  # one item, one group
    assert any(a[:4] != a[3] * 4 for a, _ in seqs)  # items are separate groups
    assert any(a[7:] != b[7:] for a, b in seqs)


def test_omit_and_per_residue_omit(capsys, tmp_path, zng):
    omit = tmp_path / "omit.jsonl"
    omit.write_text(json.dumps({"biotite__5zng": {"A": [[list(range(1, 80)), "LEKAVIG"]]}}))
    rc, out, _ = run(
        capsys,
        zng,
        "--omit",
        "CWX",
        "--omit-jsonl",
        omit,
        "--num-seqs",
        "3",
        "--temperature",
        "0.5",
    )
    for _, s in fasta(out)[1:]:
        a, c = s.split("/")
        assert not set(s) & set("CWX") and not set(a) & set("LEKAVIG")
        assert set(c) & set("LEKAVIG")


def test_global_bias_and_bias_jsonl_and_bias_by_res(capsys, tmp_path, zng):
    base = run(capsys, zng, "--num-seqs", "4", "--temperature", "0.3", "--seed", "3")[1]
    count = lambda text, a: sum(s.count(a) for _, s in fasta(text)[1:])
    up = run(
        capsys,
        zng,
        "--bias",
        "W:3.0,A:-2",
        "--num-seqs",
        "4",
        "--temperature",
        "0.3",
        "--seed",
        "3",
    )[1]
    assert count(up, "W") > count(base, "W") + 10 and count(up, "A") < count(base, "A")
    bias = tmp_path / "bias.jsonl"
    bias.write_text(json.dumps({"W": 3.0, "A": -2}))
    same = run(
        capsys, zng, "--bias-jsonl", bias, "--num-seqs", "4", "--temperature", "0.3", "--seed", "3"
    )[1]
    assert same == up
    rows = np.zeros((62, 21))
    rows[:, ALPHABET.index("P")] = 4.0
    by_res = tmp_path / "by_res.jsonl"
    by_res.write_text(json.dumps({"biotite__5zng": {"C": rows.tolist()}}))
    out = run(
        capsys, zng, "--bias-by-res-jsonl", by_res, "--num-seqs", "2", "--temperature", "0.3"
    )[1]
    for _, s in fasta(out)[1:]:
        a, c = s.split("/")
        assert c.count("P") >= 10 > a.count("P")


def test_inputs_folder_jsonl_json_and_out(capsys, tmp_path, zng, hvr):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(zng, folder)
    shutil.copy(hvr, folder)
    jsonl = tmp_path / "one.jsonl"
    rec = read_structure(hvr)
    rec.name = "hvr_copy"
    write_jsonl([rec], jsonl)
    out = tmp_path / "designs.json"
    rc, stdout, _ = run(capsys, folder, jsonl, "--json", "--out", out, "--chains", "A")
    assert rc == 0 and stdout == ""
    data = json.loads(out.read_text())
    assert [d["name"] for d in data] == ["biotite__5zng", "mdanalysistests__1hvr", "hvr_copy"]
    d = data[0]
    assert d["designed_chains"] == ["A"] and d["fixed_chains"] == ["C"]
    s = d["samples"][0]
    assert set(s) == {"T", "sample", "score", "global_score", "seq_recovery", "seq"}
    assert s["seq"]["C"] == d["native"]["seq"]["C"] and len(s["seq"]["A"]) == 79


def test_score_only_native_and_fasta(capsys, tmp_path, zng):
    rc, out, _ = run(capsys, zng, "--chains", "A", "--num-seqs", "2", "--seed", "4")
    fa = tmp_path / "designs.fa"
    fa.write_text(out)
    rc, text, _ = run(
        capsys, zng, "--chains", "A", "--score-only", "--fasta", fa, "--num-orders", "3", "--json"
    )
    assert rc == 0
    res = json.loads(text)
    assert [r["source"].split()[0] for r in res] == ["native", "fasta:1", "fasta:2", "fasta:3"]
    assert all(len(r["per_order"]) == 3 for r in res)
    assert res[0]["score"] == pytest.approx(np.mean([p[0] for p in res[0]["per_order"]]))
    assert res[2]["seq"]["A"] == fasta(out)[1][1]
    assert len(res[0]["nll"]["A"]) == 79 and len(res[0]["nll"]["C"]) == 62
    assert res[0]["score"] == pytest.approx(np.mean(res[0]["nll"]["A"]), abs=1e-4)
    assert res[2]["score"] < res[0]["score"]  # designs score better than native
    rc, text, _ = run(capsys, zng, "--chains", "A", "--score-only")
    assert text.startswith(">biotite__5zng, source=native, score=")


@pytest.mark.parametrize("kind", ["conditional", "unconditional"])
def test_probs_npz(capsys, tmp_path, zng, kind):
    rc, _, _ = run(
        capsys,
        zng,
        "--chains",
        "C",
        "--probs",
        kind,
        "--out",
        tmp_path / "p",
        "--num-orders",
        "2",
        "--batch-size",
        "31",
    )
    assert rc == 0
    z = np.load(tmp_path / "p" / "biotite__5zng.npz")
    assert z["log_p"].shape == ((2 if kind == "conditional" else 1), 141, 21)
    assert int(z["design_mask"].sum()) == 62
    p = np.exp(z["log_p"][0][z["design_mask"]]).sum(-1)
    assert np.allclose(p, 1, atol=1e-4)
    assert list(z["chain_ids"][:1]) == ["A"] and z["residue_ids"][0] == "991"


@pytest.mark.parametrize(
    "argv, culprit",
    [
        (["--chains", "A,Q"], "no chain 'Q'"),
        (["--fixed", "A:2000"], "no residue A:2000"),
        (["--fixed", "A:1..5"], "cannot read '1..5'"),
        (["--design-only", "C:30", "--chains", "A"], "C:30 is not in a designed chain"),
        (["--bias", "A:-1,B:2"], "unknown amino-acid letter 'B'"),
        (["--bias", "A:lots"], "'lots' is not a number"),
        (["--omit", "ACDEFGHIKLMNPQRSTVWYX"], "no letter left"),
        (["--omit", "CZ"], "unknown amino-acid letter 'Z'"),
        (["--temperature", "0"], "--temperature must be positive"),
        (["--weights", "original:v_99"], "--weights"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(capsys, tmp_path, zng, argv, culprit):
    out = tmp_path / "o.fa"
    rc, stdout, err = run(capsys, zng, *argv, "--out", out)
    assert rc == 2 and culprit in err and stdout == ""
    assert not out.exists()


def test_bad_files_exit_2(capsys, tmp_path, zng, hvr):
    tied = tmp_path / "tied.jsonl"
    tied.write_text(json.dumps({"mdanalysistests__1hvr": [{"A": [1, 2]}, {"A": [2], "B": [2]}]}))
    rc, _, err = run(capsys, hvr, "--tied-jsonl", tied)
    assert rc == 2 and "residue A:2 is in two tied groups" in err
    rc, _, err = run(capsys, hvr, "--homo-oligomer", "--fixed", "A:1-5")
    assert rc == 2 and "mixes fixed (A:1) and designed (B:1)" in err
    wrong = tmp_path / "fixed.jsonl"
    wrong.write_text(json.dumps({"1abc": {"A": [1]}}))
    rc, _, err = run(capsys, zng, "--fixed-jsonl", wrong)
    assert rc == 2 and "names none of the inputs (biotite__5zng)" in err
    wrong.write_text(json.dumps({"biotite__5zng": {"A": [80]}}))
    rc, _, err = run(capsys, zng, "--fixed-jsonl", wrong)
    assert rc == 2 and "chain A has positions 1-79, not 80" in err
    bias = tmp_path / "bias.jsonl"
    bias.write_text('{"A": 1.0, "J": 2.0}\n')
    rc, _, err = run(capsys, zng, "--bias-jsonl", bias)
    assert rc == 2 and "'J'" in err and str(bias) in err
    fa = tmp_path / "x.fa"
    fa.write_text(">s\nAAAA/CCC\n")
    rc, _, err = run(capsys, zng, "--score-only", "--fasta", fa)
    assert rc == 2 and "chain A has 4 letters; biotite__5zng chain A has 79 residues" in err
    rc, _, err = run(capsys, tmp_path / "missing.pdb")
    assert rc == 2 and "missing.pdb" in err


def test_module_entry_point_threads_and_usage_error(tmp_path, zng):
    out = tmp_path / "o.fa"
    cmd = [
        sys.executable,
        "-m",
        "pyg_mpnn.design",
        str(zng),
        "--threads",
        "1",
        "--out",
        str(out),
        "--no-progress",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr
    assert out.read_text().startswith(">biotite__5zng")
    res = subprocess.run(
        cmd + ["--num-seqs", "many"], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert res.returncode == 2 and "--num-seqs" in res.stderr
