"""The errors a command reports in one line, without a traceback.

* :class:`UserError`: the user's mistake (a path, a file's content, a flag, a config value, a
  weights file). The message names the culprit and says what would be accepted; the command
  exits with status 2, as argparse does for a usage error.
* :class:`CommandError`: its base, for a fault that stops a command and that a message
  explains better than a traceback (a training run's non-finite steps, a full disk); status 1.

Anything else is a bug in pyg_mpnn and keeps its traceback. :func:`pyg_mpnn.cli.run_cli` turns
these into the message and the exit status; every ``python -m pyg_mpnn...`` command runs
through it. This module imports nothing, so every layer of the package may raise them.
"""

from __future__ import annotations


class CommandError(Exception):
    """A fault that ends a command with ``error: <message>`` on stderr and exit ``status``."""

    status = 1


class UserError(CommandError):
    """A user's mistake: ``error: <message>`` on stderr, exit status 2, no traceback."""

    status = 2


class BadValue(UserError, ValueError):
    """A value the user gave (an option, a config key, a file's setting) that cannot be used;
    a ``ValueError`` too, for callers of the library."""
