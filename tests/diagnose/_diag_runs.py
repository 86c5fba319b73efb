"""Short real training runs (embedded data, CPU) for the diagnose tests."""

import torch

from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer

NAN_STEP, NAN_LAYER = 6, "encoder.0"


def train(out, *overrides):
    """``noise_module`` (16 steps, 1 thread) with ``overrides``; returns the run folder."""
    torch.set_num_threads(1)
    cfg = load_experiment("noise_module", ["train.progress=false", "train.threads=1", *overrides])
    Trainer(cfg, out).fit()
    return out
