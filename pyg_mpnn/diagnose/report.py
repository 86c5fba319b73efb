"""What ``python -m pyg_mpnn.diagnose`` does once its arguments are read: load the run's
series, run the checks, write ``report.md``, ``findings.json`` and the figures (each file
atomically), log them to Aim. A run with too little tracked data gets a report that says so
(and a warning on stderr) instead of figures with empty axes."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from aim import Image, Run, Text

from pyg_mpnn.atomic import atomic_write
from pyg_mpnn.diagnose import figures
from pyg_mpnn.diagnose.findings import Thresholds, diagnose
from pyg_mpnn.diagnose.jacobian import load_results, probe_figure
from pyg_mpnn.diagnose.posthoc import probe_checkpoints
from pyg_mpnn.diagnose.series import load
from pyg_mpnn.track.aimio import index_run

MIN_STEPS = 3  # fewer tracked steps: no trend to read, no figure worth drawing


def run(args, th: Thresholds) -> int:
    """The command with parsed arguments ``args``; returns the exit status."""
    rs = load(args.run, args.repo)
    out = Path(args.out) if args.out else rs.run_dir or Path("runs") / "diagnose" / args.run
    if args.jacobian_checkpoints and rs.run_dir is not None:
        probe_checkpoints(
            rs.run_dir,
            args.jacobian_checkpoints,
            args.probe,
            args.probe_length,
            args.substitutions,
            log=print,
        )
    short = too_little(rs)
    if short:
        print(f"warning: {short}", file=sys.stderr)
    findings = [] if short else diagnose(rs, th)
    figs = [] if short else write_figures(rs, out, {layer for f in findings for layer in f.layers})
    jac = _jacobian_table(rs.run_dir or out)
    report = render(rs, findings, th, figs, jac, short)
    write_text(out / "report.md", report)
    write_text(
        out / "findings.json",
        json.dumps(
            {"thresholds": asdict(th), "findings": [asdict(f) for f in findings]},
            indent=1,
            default=str,
        ),
    )
    print(report)
    if not args.no_aim and rs.aim_repo and rs.aim_hash:
        log_to_aim(rs.aim_repo, rs.aim_hash, out, figs, findings, rs.run_dir or out)
        print(f"logged {len(figs)} figures to Aim run {rs.aim_hash} ({rs.aim_repo})")
    return 0


def too_little(rs) -> str:
    """Why the run's tracked data cannot be diagnosed (``""`` when it can)."""
    steps = sorted({r["step"] for r in rs.rows})
    if len(steps) >= MIN_STEPS:
        return ""
    where = rs.run_dir or rs.aim_hash
    return (
        f"{where}: too little tracked data to diagnose: {len(steps)} tracked step"
        f"{'s' * (len(steps) != 1)} ({', '.join(map(str, steps)) or 'none'}), at least "
        f"{MIN_STEPS} needed; no findings and no figures. Train longer, or track more often "
        "(track.log_every, track.layer_every)"
    )


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def write_figures(rs, out: Path, highlight: set[str]) -> list[str]:
    made = []
    todo = [
        ("layers", lambda: figures.layer_grid(rs, highlight) if rs.layers() else None),
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
        atomic_write(path, lambda f, fig=fig: fig.savefig(f, format="png", dpi=80))
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


def render(rs, findings, th: Thresholds, figs: list[str], jac: str, short: str = "") -> str:
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
    if short:
        body += [f"**Too little tracked data.** {short}.", ""]
    elif findings:
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
