"""Shared constants of the tests that train (a tiny real model and dataset); the dataset is the
``tiny_dataset`` fixture of ``tests/conftest.py``."""

# Twelve small single-chain TS50 structures (85-173 residues), real PDB files (tests/fixtures).
SMALL = [
    "1ahsA",
    "1bvyF",
    "1dx5I",
    "1eteA",
    "1h4aX",
    "1i8nA",
    "1lpbA",
    "1or4A",
    "1pdoA",
    "1v7mV",
    "1y1lA",
    "1mr1D",
]

# The real ProteinMPNN, shrunk so that a step takes milliseconds.
TINY_MODEL = [
    "model.hidden_dim=16",
    "model.num_encoder_layers=1",
    "model.num_decoder_layers=2",
    "model.k_neighbors=8",
    "train.threads=1",
    "train.progress=false",
]


def small_structures() -> list[str]:
    """Paths of the twelve structure files."""
    from testdata import structure  # tests/ is on sys.path under pytest, not in torchrun workers

    return [str(structure(f"mdanalysistests__{n}.pdb.gz")) for n in SMALL]


def make_tiny_dataset(out, **prepare_kwargs):
    """Prepare the twelve structures into a dataset folder (about a second)."""
    from pyg_mpnn.data.prepare import prepare

    prepare(small_structures(), out, progress=False, **prepare_kwargs)
    return out
