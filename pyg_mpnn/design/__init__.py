"""Design sequences with ProteinMPNN weights, as the original's ``protein_mpnn_run.py`` does.

    python -m pyg_mpnn.design complex.pdb --chains A --fixed A:1-10 --num-seqs 8

Modules, in reading order: :mod:`.constraints` (residue specs, the original's JSONL
dictionaries, letters), :mod:`.tying` (tied positions, homo-oligomers), :mod:`.chains`
(designed chains per structure, maximum length), :mod:`.pssm` (the original's PSSM),
:mod:`.spec` (options -> per-structure constraints), :mod:`.sampling` (native score, batched
sampling, backbone noise),
:mod:`.scoring` (score-only, conditional / unconditional probabilities), :mod:`.output`
(FASTA, JSON, npz) and :mod:`.cli`. The sampler itself is
:meth:`pyg_mpnn.nn.model.ProteinMPNN.sample` with a :class:`~pyg_mpnn.nn.decoding.DecodeControl`.
See docs/design.md.
"""

from pyg_mpnn.cli import lazy_exports

# Loaded on first use: ``python -m pyg_mpnn.design`` imports this package first, and its
# ``--help`` must not wait for torch.
_ON_FIRST_USE = {
    "main": "pyg_mpnn.design.cli",
    "Constraints": "pyg_mpnn.design.constraints",
    "DesignError": "pyg_mpnn.design.constraints",
    "DesignSpec": "pyg_mpnn.design.spec",
}


__getattr__ = lazy_exports(__name__, _ON_FIRST_USE)

__all__ = ["main", "Constraints", "DesignError", "DesignSpec"]
