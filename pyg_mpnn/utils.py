"""Small tools every layer uses: seeding and capturing the random generators, and making a
value JSON-safe.

Imports nothing of the package, so any module may import it (``pyg_mpnn.data`` for a record's
meta, ``pyg_mpnn.track`` for a run's config, ``pyg_mpnn.train`` for a run's seed and resume).
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (CUDA's with torch's)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The state of Python's, numpy's, torch's CPU and (when available) CUDA generators, as
    a checkpoint stores it for an exact resume."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Put back the generators' state :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
