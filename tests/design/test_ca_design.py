"""Designing with the CA-only model: ``ca:`` weights imply it, ``--ca-only`` asks for it, and a
CA trace (a PDB file with CA atoms only, made here from a real fixture) designs exactly as the
full structure does, since the model reads CA atoms alone."""

from __future__ import annotations

import pytest
from testdata import ca_trace

from pyg_mpnn.design import main


def run(capsys, *argv):
    rc = main([str(a) for a in argv] + ["--no-progress"])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture(scope="module")
def zng(structures):
    return structures / "biotite__5zng.pdb"


@pytest.fixture(scope="module")
def zng_trace(zng, tmp_path_factory):
    return ca_trace(zng, tmp_path_factory.mktemp("trace") / "biotite__5zng.pdb")


ARGS = ("--num-seqs", "2", "--chains", "C", "--seed", "3")


def test_ca_trace_designs_as_the_full_structure(capsys, zng, zng_trace):
    rc, from_trace, err = run(capsys, zng_trace, "--weights", "ca:v_48_020", *ARGS)
    assert rc == 0, err
    rc, from_full, _ = run(capsys, zng, "--weights", "ca:v_48_020", *ARGS)
    assert rc == 0 and from_trace == from_full
    lines = from_trace.splitlines()
    assert len(lines) == 6 and "model_name=v_48_020" in lines[0]
    assert all(len(s) == 62 for s in lines[1::2])  # chain C designed, A visible
    rc, full_model, _ = run(capsys, zng, *ARGS)  # the full-backbone model: other designs
    assert rc == 0 and full_model.splitlines()[3] != lines[3]


def test_ca_only_flag_picks_the_ca_weights(capsys, zng_trace):
    rc, flag, _ = run(capsys, zng_trace, "--ca-only", *ARGS)
    rc2, named, _ = run(capsys, zng_trace, "--weights", "ca:v_48_020", *ARGS)
    assert rc == rc2 == 0 and flag == named


def test_ca_trace_with_full_backbone_weights_is_a_clear_error(capsys, zng_trace):
    rc, out, err = run(capsys, zng_trace, *ARGS)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "--ca-only" in err and "Traceback" not in err
    rc, out, err = run(capsys, zng_trace, "--ca-only", "--weights", "original:v_48_020")
    assert rc == 2 and out == "" and "full-backbone" in err
