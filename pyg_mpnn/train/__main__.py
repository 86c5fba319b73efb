"""``python -m pyg_mpnn.train --exp NAME [--set key=value ...] [--data PATH] [--out DIR]
[--resume [PATH]] [--init WEIGHTS]``.

The training engine (torch) is imported once the arguments are read, so ``--help`` and usage
errors answer at once."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from pyg_mpnn.cli import command, make_parser, report
from pyg_mpnn.train.config import (
    Config,
    ConfigError,
    explicit_keys,
    list_experiments,
    load_experiment,
)

DESCRIPTION = (
    "Train ProteinMPNN: an experiment (experiments/NAME.yaml merged over base.yaml, with "
    "--set overrides) on a dataset folder or on structure/JSONL sources prepared on first use "
    "(cached in $PYG_MPNN_CACHE, else ~/.cache/pyg_mpnn), from scratch or from released or "
    "trained weights (--init). The run folder gets checkpoints (atomic, the last few and the "
    "best), metrics.csv, run.json and an Aim repo; --resume continues a run exactly. A wrong "
    "key, value, path or weights file is reported in one line (exit status 2), a fault that "
    "stops the run too (status 1). See docs/training.md."
)
EXAMPLES = [
    "python -m pyg_mpnn.train --exp smoke --out runs/smoke/demo",
    "python -m pyg_mpnn.train --exp smoke --out runs/smoke/demo --set train.epochs=6 "
    "--set train.max_steps=24 --resume",
    "python -m pyg_mpnn.train --exp finetune --init original:v_48_020 --data data/default.jsonl.gz "
    "--set train.max_steps=10 --out runs/finetune/demo",
]


def _parser() -> argparse.ArgumentParser:
    exps = list_experiments()
    width = max((len(n) for n in exps), default=4)
    epilog = "experiments (experiments/<name>.yaml, merged over base.yaml):\n" + "\n".join(
        f"  {n:<{width}}  {d}" for n, d in exps.items()
    )
    p = make_parser("python -m pyg_mpnn.train", DESCRIPTION, EXAMPLES, epilog)
    p.add_argument("--exp", default="smoke", help="experiment name or YAML path")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set optim.grad_clip=1.0 (repeatable; default: none)",
    )
    p.add_argument(
        "--data",
        help="dataset folder, or structure/JSONL sources to prepare "
        "(default: the embedded dataset)",
    )
    p.add_argument("--out", help="run folder (default: runs/<exp>/<timestamp>)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="PATH",
        help="resume from a checkpoint file or run folder; without PATH: the newest "
        "checkpoint under --out, else the newest run of --exp",
    )
    p.add_argument(
        "--init",
        metavar="WEIGHTS",
        help="start from these weights (fresh optimizer, schedule and step): "
        "original:v_48_0xx, soluble:v_48_0xx, ca:v_48_0xx, a pyg_mpnn checkpoint or one in "
        "the original's format; the architecture comes from them. With --resume, "
        "a run that already has checkpoints resumes instead",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="run torch.profiler over a few steps (profile.* keys) and stop",
    )
    p.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    return p


@command
def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status: 2 for a user's mistake (a wrong key, type or
    value, a path, a weights file: :class:`~pyg_mpnn.errors.UserError`, as argparse's usage
    errors), 1 for a fault that stops the run, 0 when done."""
    args = _parser().parse_args(argv)
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a file; give the run folder")
    cfg, resume, state = _setup(args)
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        return 0
    out = (
        Path(args.out)
        if args.out
        else (
            resume.parent.parent
            if resume
            else Path("runs") / cfg.name / time.strftime("%Y%m%d-%H%M%S")
        )
    )
    if cfg.sweep.enabled:  # several runs: the sweep takes over
        from pyg_mpnn.sweep import run_sweep

        run_sweep(cfg, out)
        return 0
    from pyg_mpnn.train.setup import RunStart
    from pyg_mpnn.train.trainer import Trainer

    # a fault that stops the run: its message, status 1
    Trainer(RunStart(cfg, state), out).fit()
    return 0


def _setup(args) -> tuple[Config, Path | None, dict | None]:
    """``(config, checkpoint to resume from, its verified state)`` of the command line, the
    one place that resolves them: the config finished (:func:`pyg_mpnn.train.setup.prepare`:
    ``init``'s architecture), the checkpoint found and verified."""
    overrides = list(args.overrides)
    for flag, value in (("--data", args.data), ("--init", args.init), ("--exp", args.exp)):
        if value is not None and not value.strip():
            raise ConfigError(f"{flag} is empty; give a path (or a name), or leave it out")
    if args.data is not None:
        overrides.append(f"data.path={args.data}")
    if args.profile:
        overrides.append("profile.enabled=true")
    if args.init is not None:
        overrides.append(f"init={args.init}")
    cfg = load_experiment(args.exp, overrides)
    if not (args.resume or cfg.init):
        return cfg, None, None
    from pyg_mpnn.train import checkpoint
    from pyg_mpnn.train.setup import prepare

    resume = state = None
    if args.resume:
        resume = checkpoint.find_resume(args.resume, args.out, Path("runs") / cfg.name)
        if resume is None and not cfg.init:
            raise ConfigError(f"nothing to resume from ({args.resume})")
        if resume is not None and not args.print_config:
            resume, state = _verified(resume, fallback=not Path(args.resume).is_file())
    # with init: its architecture, or a resumed run's own (its checkpoint's)
    cfg = prepare(cfg, state, explicit_keys(args.exp, overrides), resume).cfg
    return cfg, resume, state


def _verified(resume: Path, fallback: bool) -> tuple[Path, dict]:
    """The checkpoint to resume from, loaded and verified; with ``fallback`` (``--resume`` of
    the newest or of a run folder) the newest valid one of its run, bad ones moved aside."""
    from pyg_mpnn.nn.weights import describe_file
    from pyg_mpnn.train import checkpoint

    if fallback:
        resume, state = checkpoint.newest_valid(resume, log=lambda m: print(m, file=sys.stderr))
    elif not checkpoint.is_zip_start(resume):  # the user named a file that is no checkpoint
        raise ConfigError(f"--resume {resume}: not a checkpoint ({describe_file(str(resume))})")
    else:  # a damaged checkpoint is a fault of the run (status 1), named as such
        state = checkpoint.load_checked(resume)
    print(f"resuming from {resume} (step {state['step']})", file=sys.stderr)
    return resume, state


if __name__ == "__main__":
    from pyg_mpnn.allocator import AllocatorError, use_jemalloc

    try:
        use_jemalloc()  # re-executes this command on jemalloc when found (PYG_MPNN_ALLOCATOR)
    except AllocatorError as e:
        sys.exit(report(str(e), e.status))
    sys.exit(main())
