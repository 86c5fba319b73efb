"""``python -m pyg_mpnn.evaluate``: the command line of :mod:`pyg_mpnn.evaluation`.

This module imports no torch until the arguments are read (``--help`` answers at once); the
library's names (:func:`~pyg_mpnn.evaluation.evaluate`, :func:`~pyg_mpnn.evaluation.iter_records`,
...) are importable from here too.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys

from pyg_mpnn.cli import add_threads_option, add_weights_option, command, make_parser
from pyg_mpnn.errors import UserError

DESCRIPTION = (
    "Evaluate ProteinMPNN weights on proteins: teacher-forced perplexity and accuracy under "
    "one random decoding order, and the recovery of one sequence per protein sampled at a low "
    "temperature, over the designed chains of every protein read from --data (residues with a "
    "complete backbone; with CA-only weights, a CA atom). Files that cannot be read are named "
    "on stderr and skipped; input that yields no protein, or no residue to score, is an "
    "error. The protocol is described in pyg_mpnn/evaluation.py."
)
EXAMPLES = [
    "python -m pyg_mpnn.evaluate --data tests/fixtures/biotite__5zng.pdb",
    "python -m pyg_mpnn.evaluate --weights soluble:v_48_020 --data data/default.jsonl.gz "
    "--max-chains 10 --json",
    "python -m pyg_mpnn.evaluate --data tests/fixtures/proteinmpnn__6MRR.pdb --seed 1 "
    "--temperature 0.2",
]


def parser() -> argparse.ArgumentParser:
    p = make_parser("python -m pyg_mpnn.evaluate", DESCRIPTION, EXAMPLES)
    add_weights_option(p)
    p.add_argument(
        "--data",
        required=True,
        help=".jsonl(.gz), a structure file, a folder, or any source pyg_mpnn reads",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--seed", type=int, default=0, help="decoding orders and sampling")
    p.add_argument("--max-chains", type=int, default=None, help="evaluate at most N chains")
    p.add_argument("--temperature", type=float, default=0.1, help="sampling temperature")
    p.add_argument(
        "--batch-residues", type=int, default=2000, help="residues per batch of proteins"
    )
    add_threads_option(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def check_args(a: argparse.Namespace) -> None:
    for name in ("max_chains", "batch_residues", "threads"):
        value = getattr(a, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    if not 0 < a.temperature < math.inf:
        raise UserError(f"--temperature must be positive and finite, not {a.temperature:g}")


@command
def main(argv=None) -> int:
    a = parser().parse_args(argv)
    check_args(a)
    # torch loads from here on, after the arguments are read
    import torch

    from pyg_mpnn.evaluation import evaluate, limit_chains
    from pyg_mpnn.io.sources import read_all
    from pyg_mpnn.nn.weights import load_model

    if a.threads:
        torch.set_num_threads(a.threads)
    records, tally = read_all([a.data])
    for reason in tally.skipped:
        print(f"skipped {reason}", file=sys.stderr)
    recs = list(limit_chains(records, a.max_chains))
    if not recs:
        first = records[0]
        raise UserError(
            f"--max-chains {a.max_chains} leaves no protein: the first, {first.name}, has "
            f"{int(first.designed.sum())} designed chains"
        )
    try:
        model = load_model(a.weights)
    except UserError as err:
        raise UserError(f"--weights {err}") from None
    m = evaluate(
        model,
        recs,
        seed=a.seed,
        temperature=a.temperature,
        max_residues=a.batch_residues,
        progress=not a.no_progress,
    )
    if not m["residues"]:  # every metric would be nan
        raise UserError(
            f"--data {a.data}: no residue to score (designed chains have no residue with a "
            "complete N, CA, C, O backbone)"
        )
    if a.json:
        print(json.dumps(m))
    else:
        print(
            f"perplexity {m['perplexity']:.3f}  accuracy {m['accuracy']:.1f}%  "
            f"recovery median {m['median_recovery']:.1f}% mean {m['mean_recovery']:.1f}%  "
            f"({m['chains']} chains, {m['residues']} residues)"
        )
    return 0


def __getattr__(name: str):
    """The library's names (``from pyg_mpnn.evaluate import evaluate``), loaded on first use."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(importlib.import_module("pyg_mpnn.evaluation"), name)


if __name__ == "__main__":
    raise SystemExit(main())
