"""``python -m pyg_mpnn.diagnose RUN`` — read a tracked run, write ``report.md`` and figures.

RUN is a run folder (``metrics.csv``, ``histograms.jsonl``, ``run.json`` beside an Aim repo) or
an Aim run hash (found under ``runs/`` or in ``--repo``). Writes into the run folder (``--out``
to change): ``report.md``, ``diagnose_layers.png``, ``diagnose_ridge.png``,
``diagnose_loss.png`` and, when the run has probe results, ``diagnose_jacobian.png``; logs the
figures to the same Aim run (``aim.Image``, name ``diagnose``, context ``figure``). With
``--jacobian-checkpoints N`` it first computes the categorical Jacobian probe on N of the run's
checkpoints (plus a fresh initialisation, step 0) for runs trained without ``jacobian.every_steps``.
Thresholds are flags (``--grad-gap 10`` ...) and are printed with the findings.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from pyg_mpnn.cli import command, make_parser
from pyg_mpnn.diagnose.findings import Thresholds
from pyg_mpnn.errors import UserError
from pyg_mpnn.train.schema import a_value, in_range

DESCRIPTION = (
    "Read a tracked training run (a run folder with metrics.csv, or an Aim run hash) and "
    "write report.md, findings.json and figures: per-layer norms, gradient ridge plots, loss "
    "curves and, when the run has them, categorical-Jacobian probe results. The findings flag "
    "layers whose gradients stay far below their peers, update/weight ratios off target, "
    "rising gradient variance on a plateau, vanishing gradients, activation blow-up or "
    "collapse, and non-finite values; the thresholds are the options below. A run with too "
    "little tracked data gets a report that says so. Figures are also logged to the run's Aim "
    "repo."
)
INTERVALS = {"skip": "[0, 1)", "persist": "(0, 1]"}  # fractions; every other threshold: > 0
EXAMPLES = [
    "python -m pyg_mpnn.train --exp smoke --out runs/smoke/demo && "
    "python -m pyg_mpnn.diagnose runs/smoke/demo",
    "python -m pyg_mpnn.diagnose runs/smoke/demo --out runs/smoke/demo/report --no-aim",
    "python -m pyg_mpnn.diagnose runs/smoke/demo --grad-gap 5 --jacobian-checkpoints 2",
]


def _parser() -> argparse.ArgumentParser:
    p = make_parser("python -m pyg_mpnn.diagnose", DESCRIPTION, EXAMPLES)
    p.add_argument("run", help="run folder or Aim run hash")
    p.add_argument("--repo", help="Aim repo holding the hash (default: searched under runs/)")
    p.add_argument("--out", help="output folder (default: the run folder)")
    p.add_argument("--no-aim", action="store_true", help="do not log figures to Aim")
    p.add_argument(
        "--jacobian-checkpoints",
        type=int,
        default=0,
        metavar="N",
        help="compute the Jacobian probe on N checkpoints of the run (+ step 0)",
    )
    p.add_argument(
        "--probe",
        default=None,
        help="probe for --jacobian-checkpoints (default: the run's jacobian.probe)",
    )
    p.add_argument("--probe-length", type=int, default=None)
    p.add_argument("--substitutions", type=int, default=None)
    th = p.add_argument_group("thresholds (see pyg_mpnn/diagnose/findings.py)")
    for f in fields(Thresholds):
        th.add_argument(
            "--" + f.name.replace("_", "-"),
            type=float,
            default=f.default,
            help=Thresholds.HELP[f.name] + f" (default: {f.default:g})",
        )
    return p


@command
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for name in ("jacobian_checkpoints", "probe_length", "substitutions"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0, not {value}")
    if args.out and Path(args.out).is_file():
        raise UserError(f"--out {args.out} is a file; give a folder")
    for f in fields(Thresholds):
        value, interval = getattr(args, f.name), INTERVALS.get(f.name, "> 0")
        if not in_range(value, interval):
            flag = "--" + f.name.replace("_", "-")
            raise UserError(f"{flag}: expected {a_value(interval)}, got {value:g}")
    th = Thresholds(**{f.name: getattr(args, f.name) for f in fields(Thresholds)})
    # aim, matplotlib and torch load from here on, after the arguments are read
    from pyg_mpnn.diagnose.report import run

    return run(args, th)


if __name__ == "__main__":
    raise SystemExit(main())
