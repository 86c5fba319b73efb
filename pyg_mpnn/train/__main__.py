"""``python -m pyg_mpnn.train --exp NAME [--set key=value ...] [--data PATH] [--out DIR]
[--resume [PATH]] [--init WEIGHTS]``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from pyg_mpnn.data.loader import LoaderWorkerError
from pyg_mpnn.train import checkpoint
from pyg_mpnn.train.config import (
    Config,
    ConfigError,
    explicit_keys,
    list_experiments,
    load_experiment,
)
from pyg_mpnn.train.faults import RunFault
from pyg_mpnn.train.finetune import resolve_init
from pyg_mpnn.train.sweep import run_sweep
from pyg_mpnn.train.trainer import Trainer


def _parser() -> argparse.ArgumentParser:
    exps = list_experiments()
    width = max((len(n) for n in exps), default=4)
    epilog = "experiments (experiments/<name>.yaml, merged over base.yaml):\n" + "\n".join(
        f"  {n:<{width}}  {d}" for n, d in exps.items()
    )
    epilog += (
        "\n\nexamples:\n"
        "  python -m pyg_mpnn.train --exp smoke\n"
        "  python -m pyg_mpnn.train --exp base --data ../shared/data/structures "
        "--set data.max_tokens=2000 --set schedule.warmup_steps=300\n"
        "  python -m pyg_mpnn.train --exp base --out runs/base/my-run --resume\n"
        "  python -m pyg_mpnn.train --exp scale_sweep\n"
        "  python -m pyg_mpnn.train --exp finetune --init original:v_48_020 "
        "--data runs/data/db5.5 --out runs/finetune/full --resume\n"
        "see docs/training.md"
    )
    p = argparse.ArgumentParser(
        prog="python -m pyg_mpnn.train",
        description="Train ProteinMPNN (pyg_mpnn).",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--exp", default="smoke", help="experiment name or YAML path (default: smoke)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set optim.grad_clip=1.0 (repeatable)",
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


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status: 2 for a config error (a wrong key, type or
    value, as argparse's usage errors), 1 for a fault that stops the run, 0 when done."""
    args = _parser().parse_args(argv)
    try:
        cfg, resume, state = _setup(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RunFault as e:  # no valid checkpoint to resume from
        print(f"error: {e}", file=sys.stderr)
        return 1
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
    if cfg.sweep.enabled:
        run_sweep(cfg, out)
        return 0
    return _train(cfg, out, state)


def _setup(args) -> tuple[Config, Path | None, dict | None]:
    """``(config, checkpoint to resume from, its verified state)`` of the command line."""
    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.path={args.data}")
    if args.profile:
        overrides.append("profile.enabled=true")
    if args.init:
        overrides.append(f"init={args.init}")
    cfg = load_experiment(args.exp, overrides)
    resume = state = None
    if args.resume:
        resume = checkpoint.find_resume(args.resume, args.out, Path("runs") / cfg.name)
        if resume is None and not cfg.init:
            raise ConfigError(f"nothing to resume from ({args.resume})")
        if resume is not None and not args.print_config:
            resume, state = _verified(resume, fallback=not Path(args.resume).is_file())
    if cfg.init:  # a resumed run keeps its own architecture
        resolve_init(cfg, explicit_keys(args.exp, overrides), spec=resume)
    return cfg, resume, state


def _train(cfg: Config, out: Path, state: dict | None) -> int:
    """Train; a fault the run cannot survive ends it with its message (status 1)."""
    try:
        trainer = Trainer(cfg, out, resume=state)
    except ConfigError as e:  # e.g. a model.freeze prefix that names no module
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        trainer.fit()
    except (RunFault, LoaderWorkerError) as e:  # no traceback: the message says what to do
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _verified(resume: Path, fallback: bool) -> tuple[Path, dict]:
    """The checkpoint to resume from, loaded and verified; with ``fallback`` (``--resume`` of
    the newest or of a run folder) the newest valid one of its run, bad ones moved aside."""
    if fallback:
        resume, state = checkpoint.newest_valid(resume, log=lambda m: print(m, file=sys.stderr))
    else:
        state = checkpoint.load_checked(resume)
    print(f"resuming from {resume} (step {state['step']})", file=sys.stderr)
    return resume, state


if __name__ == "__main__":
    sys.exit(main())
