"""Sweeps: several runs of one experiment. ``scale_sweep``: a ladder of model sizes compared
at equal training compute (iso-FLOP); ablations: points that override a few keys.

``sweep`` config keys (sizes form): ``sizes`` (list of ``[hidden_dim, layers]``; layers =
encoder = decoder depth) or ``widths`` x ``depths``; ``flop_budgets`` (training FLOPs per size:
a size's residue budget is the budget divided by its FLOPs per residue, so all sizes of one
budget spent the same compute); ``curve_flops`` (extra validation points along each run, as
fractions of the largest budget, for the loss-vs-FLOPs plot); ``replicate`` (``{size: [w, d],
seed: 1}`` or a list of them: that size again with another seed, so the table can set the gaps
between sizes against the largest seed-to-seed spread and name the sizes it cannot tell apart); ``max_minutes`` (the whole sweep's time: a short timing of
every size estimates it first, and when it would be passed, *every* budget shrinks by one
factor, said loudly: budgets are never cut unevenly). ``token_budget`` (residues) replaces
``flop_budgets`` for a plain equal-residue sweep.

Each size is one run that trains to the largest budget and is validated as it crosses each
budget (:mod:`pyg_mpnn.sweep.plan` has the arithmetic and why that is fair under Noam).

Outputs in the sweep folder: ``<size>/`` run folders (checkpoints, metrics.csv), one Aim repo
``aim/`` with one run per size (experiment = the sweep's name, run name = the size),
``scale_sweep.csv`` (one row per size and budget), ``scale_sweep.md`` (the table, the
compute-optimal size of each budget and whether the ladder brackets it, the seed spread against
the size gap, the optimal size's power law in compute, the frontier's power law),
``scale_sweep.json`` (all of it plus every validation point) and ``scale_sweep.png``.

Ablations use the same machinery with ``sweep.points`` instead of sizes
(:mod:`pyg_mpnn.sweep.points`: each point overrides a few keys; seeds, FLOP-matched points,
budgets in residues, supervised residues or FLOPs); one run of either form is
:func:`pyg_mpnn.sweep.run.train_point`.

Columns: parameters; FLOPs per residue (forward + backward of one training batch, counted by
``torch.utils.flop_counter.FlopCounterMode``, divided by its residues); peak memory (what
training that size added on top of the process before it: CUDA peak allocated, CPU peak
resident set size after ``malloc_trim``); residues/s (median over steps after the first two);
final train loss/accuracy (residue-weighted over the last quarter of steps); valid
loss/perplexity/accuracy.

Reading order: :mod:`~pyg_mpnn.sweep.sizes` (the sizes form: :func:`run_sweep`),
:mod:`~pyg_mpnn.sweep.points` (the ablation form), :mod:`~pyg_mpnn.sweep.run` (one run: its
FLOP counting, its :class:`~pyg_mpnn.sweep.run.SweepTrainer`, its row),
:mod:`~pyg_mpnn.sweep.plan` (the arithmetic, pure) and :mod:`~pyg_mpnn.sweep.report` (the
outputs). ``python -m pyg_mpnn.train --exp scale_sweep`` hands a config with a ``sweep`` over to
:func:`run_sweep`; the sweep sits above the training engine (it imports ``pyg_mpnn.train``,
never the other way round).
"""

from pyg_mpnn.sweep.run import POINT_COLUMNS, SweepTrainer, train_point
from pyg_mpnn.sweep.sizes import run_sweep, size_overrides, sizes_of

__all__ = [
    "POINT_COLUMNS",
    "SweepTrainer",
    "run_sweep",
    "size_overrides",
    "sizes_of",
    "train_point",
]
