"""The original's remaining options through ``python -m pyg_mpnn.design``'s ``main``: PSSM,
``--backbone-noise``, ``--save-score`` / ``--save-probs``, ``--conditional-probs-only-backbone``,
``--max-length``, ``--chains-jsonl``, and their user errors (one line, exit 2, nothing written).

Real structures: 5zng (chains A 79 + C 62 residues), 1orc (one chain, 64 residues).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyg_mpnn.alphabet import ALPHABET
from pyg_mpnn.design import main

ZNG = "biotite__5zng"


def run(capsys, *argv):
    rc = main([str(a) for a in argv] + ["--no-progress"])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def fasta(text):
    lines = text.splitlines()
    return list(zip(lines[::2], lines[1::2]))


def header_fields(header: str) -> dict:
    return dict(kv.split("=", 1) for kv in header[1:].split(", ") if "=" in kv)


@pytest.fixture(scope="module")
def zng(structures):
    return structures / f"{ZNG}.pdb"


@pytest.fixture(scope="module")
def orc(structures):
    return structures / "gemmi__1orc.pdb"


def pssm_file(tmp_path, chains: dict, name: str = ZNG):
    """A PSSM JSONL: ``chains`` maps chain -> (length, letter every row favours)."""
    entry = {}
    for chain, (length, letter) in chains.items():
        bias = np.zeros((length, 21))
        bias[:, ALPHABET.index(letter)] = 1.0
        odds = np.full((length, 21), -1.0)
        odds[:, ALPHABET.index(letter)] = 2.0
        entry[chain] = dict(
            pssm_coef=[1.0] * length, pssm_bias=bias.tolist(), pssm_log_odds=odds.tolist()
        )
    path = tmp_path / "pssm.jsonl"
    path.write_text(json.dumps({name: entry}) + "\n")
    return path


def test_pssm_bias_decides_and_log_odds_restrict(capsys, tmp_path, zng):
    path = pssm_file(tmp_path, {"A": (79, "W")})
    pssm = ("--pssm-jsonl", path, "--num-seqs", "2", "--temperature", "0.5")
    rc, out, err = run(capsys, zng, *pssm, "--pssm-bias-flag", "--pssm-multi", "1")
    assert rc == 0, err
    for _, seq in fasta(out)[1:]:
        a, c = seq.split("/")
        assert a == "W" * 79 and c.count("W") < 10  # chain C has no PSSM
    rc, out, _ = run(capsys, zng, *pssm, "--pssm-log-odds-flag", "--pssm-threshold", "1.0")
    base = run(capsys, zng, *pssm[2:])[1]
    for (_, seq), (_, plain) in zip(fasta(out)[1:], fasta(base)[1:]):
        # letters other than W keep 0.1% of their probability: W gains where it had any
        assert seq.split("/")[0].count("W") > plain.split("/")[0].count("W") + 10
    rc, half, _ = run(capsys, zng, *pssm, "--pssm-bias-flag", "--pssm-multi", "0.3")
    counts = [s.split("/")[0].count("W") for _, s in fasta(half)[1:]]
    assert all(5 < k < 79 for k in counts)  # a mixture


def test_pssm_respects_omit_and_fixed(capsys, tmp_path, zng):
    path = pssm_file(tmp_path, {"A": (79, "C")})
    rc, out, _ = run(
        capsys,
        zng,
        "--pssm-jsonl",
        path,
        "--pssm-bias-flag",
        "--pssm-multi",
        "0.9",
        "--omit",
        "CX",
        "--fixed",
        "A:991-995",
    )
    native, seq = fasta(out)[0][1], fasta(out)[1][1]
    assert "C" not in seq.split("/")[0][5:] and seq[:5] == native[:5]


@pytest.mark.parametrize(
    "argv, culprit",
    [
        (["--pssm-multi", "0.5"], "--pssm-multi needs --pssm-jsonl"),
        (["--pssm-bias-flag"], "--pssm-bias-flag needs --pssm-jsonl"),
        (["--pssm-jsonl", "{p}"], "needs --pssm-bias-flag and/or --pssm-log-odds-flag"),
        (["--pssm-jsonl", "{p}", "--pssm-bias-flag"], "--pssm-multi in (0, 1]"),
        (["--pssm-jsonl", "{p}", "--pssm-bias-flag", "--pssm-multi", "1.5"], "got 1.5"),
        (
            ["--pssm-jsonl", "{p}", "--pssm-log-odds-flag", "--pssm-multi", "0.5"],
            "needs --pssm-bias",
        ),
        (["--pssm-jsonl", "{p}", "--pssm-bias-flag", "--pssm-multi", "nan"], "got nan"),
        (
            [
                "--pssm-jsonl",
                "{p}",
                "--pssm-threshold",
                "1",
                "--pssm-bias-flag",
                "--pssm-multi",
                "1",
            ],
            "--pssm-threshold needs --pssm-log-odds-flag",
        ),
        (["--pssm-jsonl", "{p}", "--pssm-bias-flag", "--pssm-multi", "1", "--omit", "WX"], "A:991"),
        (["--backbone-noise", "-0.1"], "--backbone-noise must be a finite number >= 0"),
        (["--backbone-noise", "inf"], "--backbone-noise must be a finite number >= 0"),
        (["--max-length", "0"], "--max-length must be at least 1"),
        (["--max-length", "100"], "every input is longer (shortest: biotite__5zng, 141"),
        (["--conditional-probs-only-backbone"], "needs --probs conditional"),
        (["--score-only", "--save-score", "{d}"], "--save-score is for designing"),
        (["--probs", "unconditional", "--save-probs", "{d}"], "--save-probs is for designing"),
        (["--save-probs", "{p}"], "not a folder"),
        (["--chains", "A", "--chains-jsonl", "{c}"], "--chains and --chains-jsonl exclude"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(capsys, tmp_path, zng, argv, culprit):
    p = pssm_file(tmp_path, {"A": (79, "W")})
    c = tmp_path / "chains.jsonl"
    c.write_text(json.dumps({ZNG: [["A"], ["C"]]}))
    d = tmp_path / "npz"
    argv = [a.format(p=p, c=c, d=d) for a in argv]
    out = tmp_path / "o.fa"
    rc, stdout, err = run(capsys, zng, *argv, "--out", out)
    assert rc == 2 and culprit in err and stdout == "", err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() and not d.exists()


@pytest.mark.parametrize(
    "entry, culprit",
    [
        ({"A": {"pssm_coef": [1.0] * 79}}, "expected {'pssm_coef', 'pssm_bias', 'pssm_log_odds'}"),
        ({"A": "W"}, "chain A: expected"),
        ({"Q": {}}, "has no chain 'Q'"),
        ("A", "expected {chain: PSSM}"),
    ],
)
def test_bad_pssm_files_exit_2(capsys, tmp_path, zng, entry, culprit):
    path = tmp_path / "pssm.jsonl"
    path.write_text(json.dumps({ZNG: entry}))
    rc, _, err = run(capsys, zng, "--pssm-jsonl", path, "--pssm-log-odds-flag")
    assert rc == 2 and culprit in err and str(path) in err


def test_bad_pssm_values_exit_2(capsys, tmp_path, zng):
    path = pssm_file(tmp_path, {"A": (79, "W")})
    good = json.loads(path.read_text())
    flags = ("--pssm-jsonl", path, "--pssm-bias-flag", "--pssm-multi", "0.5")
    for key, value, culprit in [
        ("pssm_coef", [1.0] * 78, "pssm_coef: expected shape (79,), got shape (78,)"),
        ("pssm_coef", [2.0] * 79, "pssm_coef: values must lie in [0, 1]"),
        ("pssm_bias", [[-1.0] * 21] * 79, "pssm_bias: probabilities must be finite and >= 0"),
        ("pssm_bias", [["x"] * 21] * 79, "pssm_bias: expected shape (79, 21), got not a numeric"),
    ]:
        bad = json.loads(json.dumps(good))
        bad[ZNG]["A"][key] = value
        path.write_text(json.dumps(bad))
        rc, _, err = run(capsys, zng, *flags)
        assert rc == 2 and culprit in err and "chain A" in err, err


def test_save_score_and_save_probs(capsys, tmp_path, zng):
    scores, probs = tmp_path / "scores", tmp_path / "probs"
    args = (
        "--chains",
        "A",
        "--num-seqs",
        "3",
        "--batch-size",
        "2",
        "--temperature",
        "0.1",
        "--temperature",
        "0.3",
    )
    rc, out, _ = run(capsys, zng, *args, "--save-score", scores, "--save-probs", probs)
    assert rc == 0
    recs = fasta(out)[1:]
    s = np.load(scores / f"{ZNG}.npz")
    assert sorted(s) == ["global_score", "score"] and s["score"].dtype == np.float32
    assert [f"{x:.4f}" for x in s["score"]] == [header_fields(h)["score"] for h, _ in recs]
    assert [f"{x:.4f}" for x in s["global_score"]] == [
        header_fields(h)["global_score"] for h, _ in recs
    ]
    z = np.load(probs / f"{ZNG}.npz")
    assert {"probs", "log_probs", "S", "mask", "chain_order"} <= set(z)
    assert z["probs"].shape == z["log_probs"].shape == (6, 141, 21) and z["S"].shape == (6, 141)
    assert ["".join(ALPHABET[i] for i in row[:79]) for row in z["S"]] == [seq for _, seq in recs]
    design = z["mask"][0].astype(bool)
    assert design.sum() == 79 and list(z["chain_order"]) == ["A", "C"]
    assert np.allclose(z["probs"][:, design].sum(-1), 1, atol=1e-5)
    assert (z["probs"][:, ~design] == 0).all()
    nll = -np.take_along_axis(z["log_probs"], z["S"][..., None].astype(int), -1)[..., 0]
    assert np.allclose(nll[:, design].mean(1), s["score"], atol=1e-5)
    rc, again, _ = run(capsys, zng, *args)
    assert again == out  # saving changes nothing


def test_backbone_noise(capsys, tmp_path, orc):
    args = ("--num-seqs", "2", "--seed", "3")
    plain = run(capsys, orc, *args)[1]
    assert run(capsys, orc, *args, "--backbone-noise", "0")[1] == plain
    noisy = run(capsys, orc, *args, "--backbone-noise", "0.3")[1]
    assert noisy != plain and run(capsys, orc, *args, "--backbone-noise", "0.3")[1] == noisy
    assert fasta(noisy)[0][0] != fasta(plain)[0][0]  # the native is scored on a noisy backbone
    score = ("--score-only", "--num-orders", "2")
    assert run(capsys, orc, *score, "--backbone-noise", "0.3")[1] != run(capsys, orc, *score)[1]
    log_p = []
    for noise in ("0.3", "0"):
        folder = tmp_path / noise
        run(capsys, orc, "--probs", "unconditional", "--out", folder, "--backbone-noise", noise)
        log_p.append(np.load(folder / "gemmi__1orc.npz")["log_p"])
    assert np.abs(log_p[0] - log_p[1]).max() > 0.01


def test_conditional_probs_only_backbone(capsys, tmp_path, orc):
    out = tmp_path / "p"
    argv = ("--design-only", "A:10-15", "--out", out)
    rc, _, _ = run(
        capsys, orc, "--probs", "conditional", "--conditional-probs-only-backbone", *argv
    )
    assert rc == 0
    backbone = np.load(out / "gemmi__1orc.npz")
    run(capsys, orc, "--probs", "unconditional", *argv)
    un = np.load(out / "gemmi__1orc.npz")
    design = backbone["design_mask"]
    assert design.sum() == 6
    assert np.abs(backbone["log_p"][0][design] - un["log_p"][0][design]).max() < 1e-4


def test_max_length_skips_long_structures(capsys, zng, orc):
    rc, out, err = run(capsys, zng, orc, "--max-length", "100")
    assert rc == 0 and err.strip() == "skipped biotite__5zng: 141 residues > --max-length 100"
    assert [h.split(",")[0] for h, _ in fasta(out) if not h.startswith(">T=")] == [">gemmi__1orc"]


def test_chains_jsonl(capsys, tmp_path, zng, orc):
    path = tmp_path / "chains.jsonl"
    path.write_text(json.dumps({ZNG: [["C"], ["A"]]}) + "\n")
    rc, out, _ = run(capsys, zng, orc, "--chains-jsonl", path, "--num-seqs", "1")
    assert rc == 0
    headers = [h for h, _ in fasta(out) if not h.startswith(">T=")]
    assert "fixed_chains=['A'], designed_chains=['C']" in headers[0]
    assert "fixed_chains=[], designed_chains=['A']" in headers[1]  # no entry: all designed
    assert len(fasta(out)[1][1]) == 62
    path.write_text(json.dumps({ZNG: [["C"], []]}) + "\n")
    rc, left_out, _ = run(capsys, zng, "--chains-jsonl", path, "--json")
    res = json.loads(left_out)[0]
    assert list(res["native"]["seq"]) == ["C"] and res["fixed_chains"] == []
    for entry, culprit in [
        ([["C"], ["Q"]], "has no chain 'Q'"),
        ([["A"], ["A", "C"]], "chain A is both designed and fixed"),
        (["A", "C"], 'expected [["designed", ...], ["fixed", ...]]'),
    ]:
        path.write_text(json.dumps({ZNG: entry}))
        rc, _, err = run(capsys, zng, "--chains-jsonl", path)
        assert rc == 2 and culprit in err and str(path) in err, err
