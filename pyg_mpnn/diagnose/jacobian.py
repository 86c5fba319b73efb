"""The categorical-Jacobian probe, for the ``diagnose`` CLI and its post-hoc runs.

It lives in :mod:`pyg_mpnn.track.jacobian` (the trainer runs it while tracking, and
``pyg_mpnn.train`` does not import ``pyg_mpnn.diagnose``); these are its names for
``python -m pyg_mpnn.diagnose`` and :mod:`pyg_mpnn.diagnose.posthoc`.
"""

from pyg_mpnn.track.jacobian import (
    apc,
    categorical_jacobian,
    contact_map,
    evaluate,
    load_probe,
    load_results,
    probe_figure,
    save_result,
)

__all__ = [
    "apc",
    "categorical_jacobian",
    "contact_map",
    "evaluate",
    "load_probe",
    "load_results",
    "probe_figure",
    "save_result",
]
