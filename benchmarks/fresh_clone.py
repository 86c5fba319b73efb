"""What a new user meets first, timed: ``make install`` in a clean clone with the prebuilt
wheels beside it and without them, then ``make run`` (the scale_sweep) in the first clone.

Each clone is ``git clone`` of this repository's committed HEAD into a scratch folder; the
one "with wheels" gets ``../shared`` beside it (a link to this repository's), the one "from
source" gets nothing beside it, so ``scripts/install.sh`` compiles torch-cluster. pip's cache
is off (``PIP_NO_CACHE_DIR=1``), as on a fresh machine. Wall-clock seconds of each command;
``make run``'s own report (the table per size and budget, the compute-optimal size of each
budget, the seed spread) is kept whole, and its figure copied beside the result.

Run on an otherwise idle machine (docs/training.md, README.md render from its JSON)::

    python -m benchmarks.fresh_clone --json --out benchmarks/results/fresh_clone.json
    # the summary again from the stored rows, with the current analysis code:
    python -m benchmarks.fresh_clone --json --reanalyse benchmarks/results/fresh_clone.json \
        --out benchmarks/results/fresh_clone.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    REPO,
    command,
    emit,
    finished,
    git_commit,
    machine,
    result_parser,
    shown_path,
)
from pyg_mpnn.sweep.report import summary as sweep_summary

SHARED = REPO.parent / "shared"


def timed(cmd: list[str], cwd: Path, log: Path, env: dict) -> dict:
    """Run ``cmd`` in ``cwd``, its output to ``log``: wall seconds, exit code, last lines."""
    print(f"[fresh_clone] {' '.join(cmd)} in {cwd.name} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.call(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - t0
    tail = kept_tail(log.read_text(errors="replace").splitlines())
    print(f"[fresh_clone]   {seconds:.0f} s, exit {rc}", file=sys.stderr, flush=True)
    return {"seconds": round(seconds, 1), "minutes": round(seconds / 60, 1), "rc": rc, "tail": tail}


def kept_tail(lines: list[str], n: int = 4) -> list[str]:
    """A command's last ``n`` lines less pip's notes on this machine's own package locations
    (they name its folders)."""
    return [x for x in lines if not x.startswith("WARNING: Location 'file:")][-n:]


def clone(into: Path, with_shared: bool) -> Path:
    """A clean clone of HEAD at ``into/pyg_mpnn``, with ``into/shared`` linked or absent."""
    into.mkdir(parents=True)
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(into / "pyg_mpnn")], check=True)
    if with_shared:
        (into / "shared").symlink_to(SHARED.resolve(), target_is_directory=True)
    return into / "pyg_mpnn"


def newest_sweep(repo: Path) -> Path | None:
    """A clone's newest ``runs/scale_sweep/<timestamp>/scale_sweep.json``."""
    reports = sorted((repo / "runs" / "scale_sweep").glob("*/scale_sweep.json"))
    return reports[-1] if reports else None


def sweep_report(path: Path) -> dict:
    """A ``scale_sweep.json`` less its per-run histories (they stay in the run folders)."""
    doc = json.loads(path.read_text())
    doc["runs"] = [{k: v for k, v in r.items() if k != "history"} for r in doc.get("runs", [])]
    return doc


def install_env(work: Path) -> dict:
    """This process's environment as a fresh machine's shell has it: no venv, no pip cache, no
    pyg_mpnn settings, an empty data cache (``work/cache``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYG_MPNN_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    env["PIP_NO_CACHE_DIR"] = "1"
    env["XDG_CACHE_HOME"] = str(work / "cache")
    return env


def parse_args(argv=None) -> argparse.Namespace:
    ap = result_parser(__doc__)
    ap.add_argument("--no-run", action="store_true", help="time the installs only")
    ap.add_argument("--no-source", action="store_true", help="skip the install from source")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument(
        "--reanalyse", metavar="FILE", help="FILE's scale_sweep summary again from its rows"
    )
    return ap.parse_args(argv)


def reanalyse(args, argv) -> dict:
    """``--reanalyse FILE``: the scale_sweep summary of a result computed again from its rows
    and runs (the measurement unchanged; the frontier's power law, which needs the runs'
    histories, kept as it was), with the command and commit that did it; the install tails as
    :func:`kept_tail` keeps them."""
    try:
        result = json.loads(Path(args.reanalyse).read_text())
        sweep = result["scale_sweep"]
        rows, runs = sweep["rows"], sweep["runs"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        print(f"error: {args.reanalyse}: no scale_sweep rows ({e})", file=sys.stderr)
        raise SystemExit(2) from None
    for run in result.get("installs", []):
        run["tail"] = kept_tail(run.get("tail", []))
    fresh = sweep_summary(rows, [{**r, "history": []} for r in runs], [])
    sweep["summary"] = {**fresh, "power_law": sweep["summary"].get("power_law")}
    result["analysis"] = {
        "command": command("benchmarks.fresh_clone", argv),
        "commit": git_commit(),
    }
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.reanalyse:
        emit(reanalyse(args, argv), args, json.dumps)
        return 0
    if git_commit() is None:
        print(
            "error: fresh_clone clones this repository's HEAD: not a git checkout", file=sys.stderr
        )
        return 2
    if not (SHARED / "wheels").is_dir():
        print(
            f"error: fresh_clone needs the prebuilt wheels in {SHARED / 'wheels'}", file=sys.stderr
        )
        return 2
    info = machine()
    work = Path(args.work or tempfile.mkdtemp(prefix="fresh_clone_")).resolve()
    env = install_env(work)
    result: dict = {"command": command("benchmarks.fresh_clone", argv), "installs": []}
    try:
        plans = [("prebuilt wheels", "with", True)]
        if not args.no_source:
            plans.append(("from source", "source", False))
        repos = {}
        for name, folder, with_shared in plans:
            repo = repos[folder] = clone(work / folder, with_shared)
            run = timed(["make", "install"], repo, work / f"{folder}-install.log", env)
            result["installs"].append({"name": name, "wheels_beside": with_shared, **run})
        if not args.no_run:
            repo = repos["with"]
            result["make_run"] = timed(["make", "run"], repo, work / "make-run.log", env)
            path = newest_sweep(repo)
            report = sweep_report(path) if path else None
            if report and args.out:
                figure = Path(args.out).with_suffix(".png")
                shutil.copyfile(path.with_suffix(".png"), figure)
                report["figure_copy"] = shown_path(figure)
            result["scale_sweep"] = report
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    result["machine"] = finished(info)
    emit(result, args, json.dumps)
    failed = [i["name"] for i in result["installs"] if i["rc"]]
    failed += ["make run"] if result.get("make_run", {}).get("rc") else []
    if failed:
        print(f"error: {', '.join(failed)} failed (see the tails in the JSON)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
