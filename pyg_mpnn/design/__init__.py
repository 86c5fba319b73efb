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

from pyg_mpnn.design.cli import main
from pyg_mpnn.design.constraints import Constraints, DesignError
from pyg_mpnn.design.spec import DesignSpec

__all__ = ["main", "Constraints", "DesignError", "DesignSpec"]
