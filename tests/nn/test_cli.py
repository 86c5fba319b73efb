"""The evaluate and design commands, run in-process through their ``main``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _nn_data import REPO
from testdata import EMBEDDED, need_shared, structure

from pyg_mpnn import design, evaluate
from pyg_mpnn.alphabet import ALPHABET
from pyg_mpnn.io.structure import read_structure


def test_design_multichain_with_one_chain_fixed(tmp_path, capsys):
    pdb = structure("biotite__5zng.pdb")
    out = tmp_path / "designs.fa"
    rc = design.main(
        [str(pdb), "--chains", "A", "--num-seqs", "3", "--seed", "4", "--out", str(out)]
    )
    assert rc == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 8 and all(l.startswith(">") for l in lines[::2])
    native = read_structure(pdb)
    assert lines[1] == native.chain_seq("A")  # the original: designed chains only
    assert "fixed_chains=['C']" in lines[0] and "designed_chains=['A']" in lines[0]
    for header, seq in zip(lines[2::2], lines[3::2]):
        assert len(seq) == len(lines[1])
        assert set(seq) <= set(ALPHABET[:20])  # X is never sampled
        assert "score=" in header and "seq_recovery=" in header
    assert len({s for s in lines[3::2]}) > 1  # samples differ


def test_design_unknown_chain_is_an_error(capsys):
    assert design.main([str(structure("biotite__5zng.pdb")), "--chains", "Q"]) == 2
    assert "no chain 'Q'" in capsys.readouterr().err


@pytest.mark.parametrize("data", ["embedded", "ts50"])
def test_evaluate_json_and_seed(capsys, data):
    path = EMBEDDED if data == "embedded" else need_shared("benchmarks/ts50.jsonl")
    args = ["--data", str(path), "--json", "--max-chains", "3", "--seed", "1", "--no-progress"]
    assert evaluate.main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert set(first) == {
        "perplexity",
        "accuracy",
        "median_recovery",
        "mean_recovery",
        "chains",
        "residues",
    }
    assert first["chains"] == 3 and 2.0 < first["perplexity"] < 12.0
    assert 0 < first["median_recovery"] < 100
    assert evaluate.main(args) == 0
    assert json.loads(capsys.readouterr().out) == first  # seeded


def test_evaluate_module_entry_point_on_a_structure_file():
    cmd = [
        sys.executable,
        "-m",
        "pyg_mpnn.evaluate",
        "--data",
        str(structure("proteinmpnn__6MRR.pdb")),
        "--json",
        "--no-progress",
        "--threads",
        "1",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["residues"] == 68
