"""The model-growing flags of experiments/base.yaml reach the model and train."""

from __future__ import annotations

import math

import pytest
from _train_tiny import TINY_MODEL

from pyg_mpnn.train.config import ConfigError, load_experiment
from pyg_mpnn.train.trainer import Trainer


def _cfg(data, *extra):
    return load_experiment(
        "smoke",
        TINY_MODEL
        + [
            f"data.path={data}",
            "data.max_tokens=300",
            "train.max_steps=2",
            "train.epochs=1",
            "track.aim=false",
            "track.layer_every=0",
            *extra,
        ],
    )


def test_activation_checkpointing_flag_trains(tiny_dataset, tmp_path):
    t = Trainer(_cfg(tiny_dataset, "train.activation_checkpointing=true"), tmp_path)
    assert t.model.activation_checkpointing and t.dist_mode == "none" and t.net is t.model
    result = t.fit()
    assert t.step == 2 and math.isfinite(result["train_loss"])


def test_distributed_flag_is_validated():
    with pytest.raises(ConfigError):
        load_experiment("smoke", ["train.distributed=mpi"])
    assert load_experiment("base").train.distributed == "auto"
    assert load_experiment("base").train.activation_checkpointing is False
