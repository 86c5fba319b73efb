"""Making a value JSON-safe, for every layer: ``pyg_mpnn.data`` (a record's meta) and
``pyg_mpnn.track`` (a run's config). Imports nothing of the package, and no torch
(``prepare --help`` reaches it).
"""

from __future__ import annotations

import numpy as np


def jsonable(value):
    """``value`` made of what JSON holds (a record's meta, a run's config): dict keys become
    strings (a tuple key ``"a|b"``), tuples lists, numpy scalars and arrays Python numbers and
    lists; str, int, float, bool and None stay; anything else becomes its ``str()``."""
    if isinstance(value, dict):
        return {
            ("|".join(map(str, k)) if isinstance(k, tuple) else str(k)): jsonable(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
