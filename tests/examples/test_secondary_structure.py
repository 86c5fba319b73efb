"""examples/secondary_structure.py, in its small setting: EncoderLayer reused for per-residue
secondary structure on the embedded data beats the baselines on held-out structures."""

import importlib.util
from pathlib import Path

import torch

from pyg_mpnn.data.default import DEFAULT_JSONL
from pyg_mpnn.io import read_jsonl, to_data

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "secondary_structure.py"


def _example():
    spec = importlib.util.spec_from_file_location("secondary_structure", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_labels_find_helices_and_strands_in_known_proportions():
    ex = _example()
    (record,) = [r for r in read_jsonl(DEFAULT_JSONL) if r.name == "mdanalysistests__5PTI"]
    labels = ex.dssp3(to_data(record))
    frac = torch.bincount(labels, minlength=3).float() / len(labels)
    # BPTI (58 residues): a C-terminal alpha helix (DSSP: residues 48-55) and a twisted
    # beta hairpin (18-35); most of the rest is coil
    assert (labels[47:54] == ex.HELIX).all(), labels.tolist()
    assert (labels[20:24] == ex.STRAND).sum() >= 3 and (labels[30:35] == ex.STRAND).sum() >= 3
    assert frac[ex.COIL] > 0.3 and frac[ex.HELIX] < 0.3


def test_small_run_beats_the_baselines(capsys):
    result = _example().main(["--small"])
    assert result["test_residues"] > 500
    assert result["accuracy"] > result["majority_class"] + 0.15, result
    assert result["accuracy"] > result["per_amino_acid"] + 0.1, result
    assert "held-out accuracy" in capsys.readouterr().out
