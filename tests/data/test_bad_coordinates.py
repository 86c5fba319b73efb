"""One bad coordinate must not wipe a chain. Real PDB files, edited here:
a NaN, 1e30 and 9999.999 A coordinate each mask their residue (reported per residue), the rest
of the chain is stored exactly; a 1,000 A-wide assembly is stored in float32."""

import gzip
import json

import numpy as np
import pytest
from testdata import structure

from pyg_mpnn.data.codec import F16_LIMIT, MAX_ERROR, coord_error, decode_record, encode_record
from pyg_mpnn.data.dataset import ProteinDataset
from pyg_mpnn.data.prepare import prepare
from pyg_mpnn.io.structure import read_structure

PDB = "mdanalysistests__1ahsA.pdb.gz"  # one chain, 126 residues
COLUMN = {"x": slice(30, 38), "y": slice(38, 46), "z": slice(46, 54)}
EDITS = {10: ("CA", "x", "     nan"), 20: ("CA", "y", "   1e+30"), 30: ("N", "z", "9999.999")}


@pytest.fixture
def pdb_lines():
    return gzip.decompress(structure(PDB).read_bytes()).decode().splitlines()  # tests/fixtures


def _residue_numbers(lines):
    out = []
    for ln in lines:
        if ln.startswith("ATOM") and ln[12:16].strip() == "CA":
            out.append(ln[22:27].strip())
    return out


def _edit(lines, residue: str, atom: str, axis: str, text: str):
    for i, ln in enumerate(lines):
        if ln.startswith("ATOM") and ln[22:27].strip() == residue and ln[12:16].strip() == atom:
            lines[i] = ln[: COLUMN[axis].start] + text + ln[COLUMN[axis].stop :]
            return
    raise AssertionError(f"no atom {atom} in residue {residue}")


def test_float16_error_bounds():
    # the bounds stated in codec.py and docs/reliability.md
    assert coord_error(100) == 2**-5 and coord_error(500) == 2**-3
    assert coord_error(1000) == 2**-2 and coord_error(1000, np.float32) < 4e-5
    assert coord_error(np.nextafter(F16_LIMIT, 0)) == MAX_ERROR


def test_bad_coordinates_mask_only_their_residue(pdb_lines, tmp_path):
    good = tmp_path / "good.pdb"
    good.write_text("\n".join(pdb_lines) + "\n")
    numbers = _residue_numbers(pdb_lines)
    lines = list(pdb_lines)
    bad_ids = []
    for k, (atom, axis, text) in EDITS.items():
        _edit(lines, numbers[k], atom, axis, text)
        bad_ids.append(numbers[k])
    bad = tmp_path / "bad.pdb"
    bad.write_text("\n".join(lines) + "\n")

    summary = prepare([str(bad)], tmp_path / "ds", progress=False)
    assert summary["records"] == 1 and summary["residues"] == len(numbers)
    assert summary["skipped"] == {"bad coordinates (residue masked)": 3}
    report = [json.loads(x) for x in (tmp_path / "ds" / "skipped.jsonl").read_text().splitlines()]
    assert [r["source"] for r in report] == [str(bad)] * 3
    for r, rid, (atom, _, _text) in zip(report, bad_ids, EDITS.values()):
        assert (
            r["reason"].startswith(f"chain A residue {rid} (") and "residue masked" in r["reason"]
        )
        assert f"{atom} " in r["reason"]
    assert (
        "NaN" in report[0]["reason"]
        and "1e+30" in report[1]["reason"]
        and "9999.9" in report[2]["reason"]
    )

    want = read_structure(good)
    got = ProteinDataset(tmp_path / "ds").record(0)
    assert got.seq == want.seq and got.residue_ids == want.residue_ids
    masked = np.flatnonzero(want.mask & ~got.mask)
    assert [got.residue_ids[i] for i in masked] == bad_ids  # those three, nothing else
    keep = got.mask
    err = np.abs(got.coords[keep] - want.coords[keep]).max()
    assert err <= MAX_ERROR, err  # the rest of the chain: float16 within its bound
    assert np.isnan(got.coords[masked]).all()


def test_assembly_1000_angstrom_wide_stored_in_float32(pdb_lines, tmp_path):
    atoms = [ln for ln in pdb_lines if ln.startswith("ATOM")]
    moved = []
    for ln in atoms:  # a second copy of the chain, 1,000 A along x: chain B
        x = float(ln[30:38]) + 1000.0
        moved.append(ln[:21] + "B" + ln[22:30] + f"{x:8.3f}" + ln[38:])
    path = tmp_path / "assembly.pdb"
    path.write_text("\n".join(atoms + ["TER"] + moved + ["END"]) + "\n")
    want = read_structure(path)
    ca = want.coords[want.mask][:, 1]
    assert ca[:, 0].max() - ca[:, 0].min() > 1000  # the assembly is over 1,000 A wide

    prepare([str(path)], tmp_path / "ds", progress=False)
    ds = ProteinDataset(tmp_path / "ds")
    got = ds.record(0)
    assert int(ds._nbytes[0]) > 51 * want.num_residues  # float32: 48 bytes of coordinates
    ok = np.isfinite(want.coords)
    assert (np.isfinite(got.coords) == ok).all()
    assert np.abs(got.coords[ok] - want.coords[ok]).max() < 1e-3  # float16 would be 0.125
    assert np.abs(want.coords[ok] - want.coords[ok].mean()).max() > F16_LIMIT


def test_small_records_keep_the_float16_layout(pdb_lines, tmp_path):
    path = tmp_path / "one.pdb"
    path.write_text("\n".join(pdb_lines) + "\n")
    rec = read_structure(path)
    blob = encode_record(rec)
    assert len(blob) < 28 * rec.num_residues + 2000  # 27 bytes a residue + header: format 2
    back = decode_record(blob)
    ok = np.isfinite(rec.coords)
    assert np.abs(back.coords[ok] - rec.coords[ok]).max() <= MAX_ERROR
