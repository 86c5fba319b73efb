"""The parts of benchmarks/foldcomp_backend.py that decide its numbers, without timing
anything: chains written from a real structure file, a Foldcomp crash contained in a fork,
the GPU step it takes, workers to feed it, and the projection's arithmetic."""

import json
import os

import pytest
from testdata import structure

from benchmarks import foldcomp_backend as fb
from pyg_mpnn.io.foldcomp import record_from_fcz
from pyg_mpnn.io.sources import read_records

pytest.importorskip("foldcomp")


def test_each_protein_chain_compressed_and_decodable():
    path = structure("biotite__5zng.pdb")
    chains = fb.chains_fcz(path)
    (rec,) = read_records(path)
    want = {c: int((rec.chain_index == i).sum()) for i, c in enumerate(rec.chain_ids)}
    assert [n for n, _ in chains] == [f"biotite__5zng_{c}" for c in want]
    for (name, fcz), n in zip(chains, want.values()):
        assert record_from_fcz(fcz, name).num_residues == n


def test_a_crash_in_the_fork_costs_only_that_call():
    assert fb.in_fork(len, "abc") == 3
    assert fb.in_fork(lambda _: os.abort(), None) is None


def test_gpu_step_from_a_gpu_suite_result_else_the_original_log(tmp_path, monkeypatch):
    monkeypatch.setattr(fb, "RESULTS", tmp_path)
    step = fb.gpu_step(10_000)
    assert step["seconds"] == 0.55 and "A100" in step["source"]
    suite = {
        "machine": {"gpu": "NVIDIA H100"},
        "train_step_summary": {"10000": {"rows": {"ours_bf16": {"residues_per_s": 40_000}}}},
    }
    (tmp_path / "gpu_suite_h100.json").write_text(json.dumps(suite))
    step = fb.gpu_step(10_000)
    assert step["seconds"] == 0.25 and "H100" in step["source"]


def test_workers_to_feed_and_projection():
    loader = {
        "shards": {"first_epoch": {"batches_per_s": 20.0}, "later_epochs": {}},
        "foldcomp": {
            "first_epoch": {"batches_per_s": None},
            "later_epochs": {"batches_per_s": 3.0},
        },
    }
    feed = fb.workers_to_feed(loader, 2, {"seconds": 0.55})
    assert feed["shards"] == {
        "rate_from": "first_epoch",
        "per_worker_batches_per_s": 10.0,
        "for_step": 1,
        "for_0.3_s": 1,
    }
    # 1.5 batches/s a worker: a 0.55 s step needs 1.82 batches/s, a 0.3 s one 3.33
    assert feed["foldcomp"]["rate_from"] == "later_epochs"
    assert (feed["foldcomp"]["for_step"], feed["foldcomp"]["for_0.3_s"]) == (2, 3)
    fit = {"bytes_per_entry": 200.0, "bytes_per_residue": 10.0, "index": 100.0}
    basis = {
        "record_size_fit": {"shards": fit, "foldcomp": fit},
        "prepare": {
            "shards": {"residues_per_s_per_core": 100_000},
            "foldcomp": {"residues_per_s_per_core": 1_000_000},
        },
    }
    p = fb.projection(basis)
    assert p["label"].startswith("projection, not measured")
    assert p["shards"]["tb_on_disk"] == round(214e6 * 3300 / 1e12, 3)  # 200 + 300 * 10 + 100
    assert p["shards"]["hours_to_prepare"] == round(214e6 * 300 / (100_000 * 64) / 3600, 2)
    assert p["foldcomp"]["tb_read"] == round(214e6 * 3200 / 1e12, 3)
