"""The one way every ``python -m pyg_mpnn...`` command ends: :func:`run_cli`.

A :class:`~pyg_mpnn.errors.UserError` raised anywhere below a command's ``main`` becomes
``error: <message>`` on stderr and exit status 2 (a :class:`~pyg_mpnn.errors.CommandError`:
its own status, 1; an ``OSError`` about a file, such as a full disk or a folder that cannot be
written: status 1); any other exception is a bug and keeps its traceback. Commands decorate
their ``main(argv)`` with :func:`command`; calling it in-process returns the exit status, as
``python -m`` does.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
import textwrap
from collections.abc import Callable

from pyg_mpnn.atomic import error_text
from pyg_mpnn.errors import CommandError, UserError

Main = Callable[[list[str] | None], int | None]


def run_cli(main: Main, argv: list[str] | None = None) -> int:
    """``main(argv)``'s exit status; a :class:`UserError` is printed as one line, a
    :class:`CommandError` (a fault of a run) as its message, which may end with a command."""
    try:
        return main(argv) or 0
    except UserError as e:
        return report(one_line(str(e)), e.status)
    except CommandError as e:  # a run's fault may end with the command to run next, alone
        return report(str(e), e.status)
    except OSError as e:
        if e.filename is None:  # not about a file of the user's: a bug, with its traceback
            raise
        return report(one_line(error_text(e)), 1)


def report(message: str, status: int) -> int:
    sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr)
    return status


def one_line(text: str) -> str:
    """``text`` with its line breaks folded, so an error stays one line on stderr."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def command(main: Main) -> Callable[[list[str] | None], int]:
    """Decorate a command's ``main(argv)``: it returns the exit status of :func:`run_cli`."""

    @functools.wraps(main)
    def wrapped(argv: list[str] | None = None) -> int:
        return run_cli(main, argv)

    return wrapped


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description and the examples as written; every option's help ends with its
    default, unless the help already names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS:
            return text
        if "default" in text.lower() or isinstance(action, argparse._HelpAction):
            return text
        if action.nargs == 0:  # a flag
            return f"{text} (default: off)".strip()
        default = "none" if action.default in (None, []) else "%(default)s"
        return f"{text} (default: {default})".strip()


def make_parser(prog: str, description: str, examples: list[str], epilog: str = ""):
    """An ``ArgumentParser`` whose help has ``description`` (one paragraph), every option's
    default and ``examples`` (commands that run as written from the repository's root)."""
    text = "examples (from the repository's root):\n" + "\n".join(f"  {e}" for e in examples)
    return argparse.ArgumentParser(
        prog=prog,
        description=textwrap.fill(description, 88),
        epilog=text + (f"\n\n{epilog}" if epilog else ""),
        formatter_class=HelpFormatter,
    )


# the weight specs every command that loads a model reads (pyg_mpnn.nn.weights.load_model)
WEIGHT_SPECS = (
    "original:v_48_0{02,10,20,30}, soluble:v_48_0xx, ca:v_48_0{02,10,20} (CA-only) or a "
    "checkpoint file (ours, e.g. a run's best.pt, or the original's format)"
)


def add_weights_option(
    p: argparse.ArgumentParser, default: str | None = "original:v_48_020", note: str = ""
) -> None:
    """``--weights``: a spec of :data:`WEIGHT_SPECS`; ``note`` ends its help (e.g. what a
    ``None`` default means)."""
    p.add_argument("--weights", default=default, help=f"{WEIGHT_SPECS} {note}".strip())


def add_threads_option(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--threads``: torch's intra-op threads (none: torch's choice)."""
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], object]:
    """A package's module ``__getattr__`` that imports ``names[name]`` (a module) on the first
    use of ``name`` and returns its attribute of that name: the re-exports of a package whose
    ``python -m`` command's ``--help`` must not wait for torch."""

    def __getattr__(name: str):
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
