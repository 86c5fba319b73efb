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
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path

from aim import Image, Run, Text

from pyg_mpnn.diagnose import figures
from pyg_mpnn.diagnose.findings import Thresholds, diagnose
from pyg_mpnn.diagnose.jacobian import load_results, probe_figure
from pyg_mpnn.diagnose.posthoc import probe_checkpoints
from pyg_mpnn.diagnose.series import load
from pyg_mpnn.track.aimio import index_run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pyg_mpnn.diagnose",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
            help=Thresholds.HELP[f.name] + f" (default {f.default:g})",
        )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    th = Thresholds(**{f.name: getattr(args, f.name) for f in fields(Thresholds)})
    rs = load(args.run, args.repo)
    out = Path(args.out) if args.out else rs.run_dir or Path("runs") / "diagnose" / args.run
    out.mkdir(parents=True, exist_ok=True)
    if args.jacobian_checkpoints and rs.run_dir is not None:
        probe_checkpoints(
            rs.run_dir,
            args.jacobian_checkpoints,
            args.probe,
            args.probe_length,
            args.substitutions,
            log=print,
        )
    findings = diagnose(rs, th)
    figs = write_figures(rs, out, {layer for f in findings for layer in f.layers})
    jac = _jacobian_table(rs.run_dir or out)
    report = render(rs, findings, th, figs, jac)
    (out / "report.md").write_text(report)
    (out / "findings.json").write_text(
        json.dumps(
            {"thresholds": asdict(th), "findings": [asdict(f) for f in findings]},
            indent=1,
            default=str,
        )
    )
    print(report)
    if not args.no_aim and rs.aim_repo and rs.aim_hash:
        log_to_aim(rs.aim_repo, rs.aim_hash, out, figs, findings, rs.run_dir or out)
        print(f"logged {len(figs)} figures to Aim run {rs.aim_hash} ({rs.aim_repo})")
    return 0


def write_figures(rs, out: Path, highlight: set[str]) -> list[str]:
    made = []
    todo = [
        ("layers", lambda: figures.layer_grid(rs, highlight)),
        ("ridge", lambda: figures.ridge(rs)),
        ("loss", lambda: figures.loss_panel(rs)),
    ]
    results = load_results(rs.run_dir or out)
    if results:
        todo.append(("jacobian", lambda: figures.jacobian_over_training(results)))
    for name, make in todo:
        fig = make()
        if fig is None:
            continue
        path = out / f"diagnose_{name}.png"
        fig.savefig(path, dpi=80)
        made.append(path.name)
    return made


def _jacobian_table(run_dir: Path) -> str:
    res = load_results(run_dir)
    if not res:
        return ""
    lines = [
        f"Probe `{res[0].get('probe')}` (L = {res[0].get('length')}, "
        f"{res[0].get('long_range_contacts')} long-range contacts).",
        "",
        "| step | P@L long-range | P@L/5 | random | mass outside kNN | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in res:
        lines.append(
            f"| {r['step']} | {r['precision_L']:.3f} | {r['precision_L5']:.3f} | "
            f"{r['random']:.3f} | {r['outside_knn']:.3f} | {r.get('seconds', 0):.0f} |"
        )
    return "\n".join(lines)


def render(rs, findings, th: Thresholds, figs: list[str], jac: str) -> str:
    steps = sorted({r["step"] for r in rs.rows})
    head = [
        f"# diagnose: {rs.run_dir or rs.aim_hash}",
        "",
        f"Source: {rs.source}; steps {steps[0] if steps else '-'}–"
        f"{steps[-1] if steps else '-'}; layers: {', '.join(rs.layers())}.",
        "",
    ]
    if rs.frozen_by_config():
        head += [
            f"Frozen by configuration (model.freeze, not trained by design, no finding): "
            f"{', '.join(rs.frozen_by_config())}.",
            "",
        ]
    body = ["## Findings", ""]
    if findings:
        body += [f.markdown() for f in findings]
    else:
        body += [
            "**No findings** with the thresholds below: no layer's gradient stays "
            f"{th.grad_gap:g}x below its peers, update/weight ratios stay within "
            f"{th.update_factor:g}x of {th.update_target:g}, no rising gradient variance on "
            "a plateau, no vanishing gradients with a high loss, no depth blow-up or "
            "collapse of activations, no non-finite value.",
            "",
        ]
    body += ["## Thresholds", "", th.table(), ""]
    if jac:
        body += ["## Categorical Jacobian vs contacts", "", jac, ""]
    body += ["## Figures", ""] + [f"![{f}]({f})" for f in figs] + [""]
    return "\n".join(head + body)


def log_to_aim(
    repo: str, run_hash: str, out: Path, figs: list[str], findings, run_dir: Path
) -> None:
    run = Run(
        run_hash=run_hash,
        repo=repo,
        capture_terminal_logs=False,
        log_system_params=False,
        system_tracking_interval=None,
    )
    try:
        for f in figs:
            run.track(
                Image(str(out / f)),
                name="diagnose",
                step=0,
                context={"figure": f[len("diagnose_") : -4]},
            )
        run.track(Text((out / "report.md").read_text()), name="diagnose_report", step=0)
        run["diagnose"] = {
            "findings": [
                {"code": f.code, "layers": f.layers, "steps": list(f.steps)} for f in findings
            ]
        }
        for r in load_results(run_dir):  # post-hoc results: the same series as the train hook
            for k in ("precision_L", "precision_L5", "random", "outside_knn"):
                run.track(
                    float(r[k]),
                    name=f"jacobian_{k}",
                    step=int(r["step"]),
                    context={"subset": "probe"},
                )
            fig = probe_figure(r, f"{r.get('probe')}, step {r['step']}")
            run.track(Image(fig), name="jacobian", step=int(r["step"]), context={"subset": "probe"})
    finally:
        run.close()
    index_run(repo, run_hash)


if __name__ == "__main__":
    sys.exit(main())
