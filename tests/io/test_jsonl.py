"""CATH-style JSONL reading and writing: on the embedded dataset ``data/default.jsonl.gz`` and
files in ``tests/fixtures``, and on the ``shared/data`` benchmarks and training files when present.

Expected counts come from the data README and ``data/SOURCES.tsv``; NaN counts from the raw text.
"""

import csv
import gzip
import json

import numpy as np
import pytest
from testdata import EMBEDDED, need_shared, structure

from pyg_mpnn.io.jsonl import iter_jsonl, read_jsonl, write_jsonl
from pyg_mpnn.io.record import ProteinRecord, ReadError
from pyg_mpnn.io.structure import read_structure


def _split(items):
    records = [x for x in items if isinstance(x, ProteinRecord)]
    errors = [x for x in items if isinstance(x, ReadError)]
    assert len(records) + len(errors) == len(items)
    return records, errors


def _assert_same_record(a: ProteinRecord, b: ProteinRecord):
    assert (a.name, a.seq, a.chain_ids) == (b.name, b.seq, b.chain_ids)
    assert a.residue_ids == b.residue_ids
    np.testing.assert_array_equal(a.coords, b.coords)  # NaN == NaN here; float32 exact
    np.testing.assert_array_equal(a.chain_index, b.chain_index)
    np.testing.assert_array_equal(a.designed, b.designed)


@pytest.fixture(scope="module")
def ts50_path():
    return need_shared("benchmarks/ts50.jsonl")


@pytest.fixture(scope="module")
def embedded_lines():
    """The embedded dataset's JSONL lines (35 structures, single- and multi-chain)."""
    return gzip.decompress(EMBEDDED.read_bytes()).decode().splitlines()


def test_ts50(ts50_path):
    records, errors = _split(list(iter_jsonl(ts50_path)))
    assert not errors
    assert len(records) == 50
    assert sum(r.num_residues for r in records) == 6861
    assert records[0].name == "1eteA" and records[0].chain_ids == ["A"]
    assert all(r.mask.all() for r in records)  # no atom missing in TS50
    assert all(r.meta["format"] == "jsonl" and r.meta["path"] == str(ts50_path) for r in records)
    assert [r.meta["line"] for r in records] == list(range(1, 51))


def test_training_file_with_missing_atoms():
    path = need_shared("training/db5.5_val.jsonl.gz")
    records = read_jsonl(path)
    assert len(records) == 132
    assert sum(r.num_residues for r in records) == 28702
    text = gzip.decompress(path.read_bytes()).decode()
    assert sum(int(np.isnan(r.coords).sum()) for r in records) == text.count("NaN")
    assert text.count("NaN") > 0
    first = json.loads(text.splitlines()[0])
    assert records[0].chain_ids == [first["chain"]]
    for key in ("split", "complex", "source", "role", "state", "num_chains", "chain"):
        assert records[0].meta[key] == first[key]
    assert {r.meta["split"] for r in records} == {"val"}


def test_embedded_file_with_missing_atoms():
    records = read_jsonl(EMBEDDED)
    with open(EMBEDDED.with_name("SOURCES.tsv")) as f:  # this file's rows and the DB5.5 parts'
        sources = {row["name"]: row for row in csv.DictReader(f, delimiter="\t")}
    assert len(records) == 35
    for r in records:
        assert (r.num_residues, len(r.chain_ids)) == (
            int(sources[r.name]["residues"]),
            int(sources[r.name]["chains"]),
        ), r.name
    text = gzip.decompress(EMBEDDED.read_bytes()).decode()
    assert sum(int(np.isnan(r.coords).sum()) for r in records) == text.count("NaN")
    assert text.count("NaN") > 0
    first = json.loads(text.splitlines()[0])
    assert records[0].chain_ids == [first["chain"]]
    for key in ("source", "num_chains", "chain"):
        assert records[0].meta[key] == first[key]


def test_bad_lines_do_not_stop_iteration(embedded_lines, tmp_path):
    good = embedded_lines
    entry = json.loads(good[3])
    short = dict(entry, seq=entry["seq"][:-1])
    no_coords = {k: v for k, v in entry.items() if k != "coords"}
    no_atoms = dict(
        entry, coords={a: [[float("nan")] * 3] * len(entry["seq"]) for a in ("N", "CA", "C", "O")}
    )
    text_atom = dict(entry, coords=dict(entry["coords"], CA=[["x", "y", "z"]] * len(entry["seq"])))
    bad = [
        '{"name": "broken", "seq": "AC',
        json.dumps(short),
        json.dumps(no_coords),
        json.dumps(no_atoms),
        json.dumps(text_atom),
        "[1, 2, 3]",
    ]
    lines = good[:3] + bad + [""] + good[3:10]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    items = list(iter_jsonl(path))
    kinds = ["R" if isinstance(x, ProteinRecord) else "E" for x in items]
    assert kinds == ["R"] * 3 + ["E"] * 6 + ["R"] * 7
    errors = items[3:9]
    assert [e.line for e in errors] == [4, 5, 6, 7, 8, 9]
    assert all(e.source == str(path) and str(path) in str(e) for e in errors)
    for error, word in zip(
        errors,
        ["invalid json", "length mismatch", "missing key", "nan", "non-numeric", "json object"],
    ):
        assert word in error.reason.lower(), error.reason
    assert [r.name for r in items[9:]] == [json.loads(ln)["name"] for ln in good[3:10]]
    assert items[9].meta["line"] == 11  # blank line 10 skipped, numbering kept


def test_partial_nan_reads_masked_and_infinity_is_an_error(embedded_lines, tmp_path):
    entry = json.loads(embedded_lines[0])
    assert "NaN" not in embedded_lines[0]
    entry["coords"]["O"][5] = [float("nan")] * 3
    infinite = dict(entry, coords=dict(entry["coords"], N=[[float("inf")] * 3] * len(entry["seq"])))
    path = tmp_path / "nan.jsonl"
    path.write_text(json.dumps(entry) + "\n" + json.dumps(infinite) + "\n")
    record, error = list(iter_jsonl(path))
    assert isinstance(record, ProteinRecord) and isinstance(error, ReadError)
    assert np.flatnonzero(~record.mask).tolist() == [5]
    assert "infinite" in error.reason


@pytest.mark.parametrize("name, total", [("embedded", 35), ("db5.5_val", 132)])
def test_truncated_gzip_ends_with_an_error(tmp_path, name, total):
    source = EMBEDDED if name == "embedded" else (need_shared("training/db5.5_val.jsonl.gz"))
    data = source.read_bytes()
    path = tmp_path / "truncated.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    records, errors = _split(list(iter_jsonl(path)))
    assert 0 < len(records) < total
    assert len(errors) >= 1 and errors[-1].source == str(path)


def test_missing_file_yields_an_error(tmp_path):
    (error,) = list(iter_jsonl(tmp_path / "absent.jsonl"))
    assert isinstance(error, ReadError)


@pytest.mark.parametrize(
    "multi, chains, partial",
    [
        ("biotite__1igy.pdb.gz", 4, "biopython__2XHE.pdb.gz"),
        ("biopython__4ZHL.cif.gz", 2, "mdanalysistests__cobrotoxin_dry_neutral_0.pdb"),
    ],
)
def test_round_trip_multi_chain_record(tmp_path, multi, chains, partial):
    """Several chains, insertion codes, a non-designed chain, pLDDT and NaN atoms survive."""
    record = read_structure(structure(multi))
    record.designed[1] = False
    record.plddt = np.linspace(0, 100, record.num_residues, dtype=np.float32)
    record.coords[7, 3] = np.nan
    partial = read_structure(structure(partial))
    assert any("A" <= r[-1] <= "Z" for r in record.residue_ids)  # insertion codes
    assert not partial.mask.all()
    for name in ("records.jsonl", "records.jsonl.gz"):
        path = tmp_path / name
        assert write_jsonl([record, partial], path) == 2
        raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
        assert len(raw.decode().splitlines()) == 2  # one line per record, not per chain
        back = read_jsonl(path)
        assert len(back) == 2
        _assert_same_record(record, back[0])
        _assert_same_record(partial, back[1])
        np.testing.assert_array_equal(record.plddt, back[0].plddt)
        assert back[0].meta["format"] == "jsonl"
        assert back[0].meta["source"] == record.meta["source"]
        assert back[0].meta["num_chains"] == chains
        assert not np.isfinite(back[0].coords[7, 3]).any()


def test_round_trip_ts50_keeps_single_chain_layout(ts50_path, tmp_path):
    records = read_jsonl(ts50_path)
    path = tmp_path / "ts50.jsonl"
    write_jsonl(records, path)
    first = json.loads(path.read_text().splitlines()[0])
    assert first["chain"] == "A" and "chain_index" not in first
    assert first["coords"]["N"][0] == [74.46, 58.252, -21.657]  # short decimals, as read
    for a, b in zip(records, read_jsonl(path)):
        _assert_same_record(a, b)


def test_round_trip_embedded_keeps_each_layout(embedded_lines, tmp_path):
    """Single-chain records stay in TS50's one-chain layout, multi-chain ones keep their chains;
    every record comes back equal."""
    records = read_jsonl(EMBEDDED)
    path = tmp_path / "embedded.jsonl"
    write_jsonl(records, path)
    for line, old in zip(path.read_text().splitlines(), embedded_lines):
        new, old = json.loads(line), json.loads(old)
        assert ("chain_index" in new) == ("chain_index" in old) == (old["num_chains"] > 1)
        assert new["coords"]["N"][0] == old["coords"]["N"][0]  # short decimals, as read
    for a, b in zip(records, read_jsonl(path)):
        _assert_same_record(a, b)


def test_original_layout_gap_letter_and_bad_lines(tmp_path):
    """The original ProteinMPNN's per-chain layout: ``-`` (a numbering gap) reads as a masked
    X; a chain without all four atoms, or with the wrong number of them, is a bad line."""
    xyz = [[0.0, 0.0, 0.0], [3.8, 0.0, 0.0], [float("nan")] * 3]
    chain = {f"{a}_chain_B": xyz for a in ("N", "CA", "C", "O")}
    line = {"name": "x", "num_of_chains": 1, "seq": "GA-", "seq_chain_B": "GA-"}
    bad = dict(line, coords_chain_B={k: v for k, v in chain.items() if not k.startswith("O")})
    short = dict(line, coords_chain_B={k: v[:2] for k, v in chain.items()})
    path = tmp_path / "parsed.jsonl"
    lines = [dict(line, coords_chain_B=chain), bad, short]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    records, errors = _split(list(iter_jsonl(path)))
    (rec,) = records
    assert (rec.seq, rec.chain_ids, rec.mask.tolist()) == ("GAX", ["B"], [True, True, False])
    assert rec.meta["num_of_chains"] == 1
    assert [e.line for e in errors] == [2, 3]
    assert "needs 'O_chain_B' with 3 coordinates" in str(errors[0])
