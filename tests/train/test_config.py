import subprocess
import sys

import pytest

from pyg_mpnn.train.config import ConfigError, list_experiments, load_experiment
from pyg_mpnn.train.schedule import noam_lr


def test_base_has_the_originals_hyperparameters():
    cfg = load_experiment("base")
    m = cfg["model"]
    assert (
        m["hidden_dim"],
        m["num_encoder_layers"],
        m["num_decoder_layers"],
        m["k_neighbors"],
    ) == (128, 3, 3, 48)
    assert m["augment_eps"] == 0.2 and m["dropout"] == 0.1
    assert cfg["loss"]["label_smoothing"] == 0.1
    assert cfg["schedule"]["factor"] == 2.0 and cfg["schedule"]["warmup_steps"] == 4000
    assert cfg["data"]["max_tokens"] == 10000
    assert cfg["optim"]["betas"] == [0.9, 0.98] and cfg["optim"]["eps"] == 1e-9


def test_experiment_merges_over_base_and_set_overrides():
    cfg = load_experiment("smoke", ["optim.grad_clip=0.5", "model.hidden_dim=24", "data.path=/x/y"])
    assert cfg["model"]["hidden_dim"] == 24  # --set beats the experiment
    assert cfg["model"]["k_neighbors"] == 16  # experiment beats base
    assert cfg["model"]["augment_eps"] == 0.2  # base fills the rest
    assert cfg["optim"]["grad_clip"] == 0.5 and isinstance(cfg["optim"]["grad_clip"], float)
    assert cfg["data"]["path"] == "/x/y"
    assert cfg["name"] == "smoke"


def test_unknown_keys_and_experiments_are_errors():
    with pytest.raises(ConfigError, match="optim.grad_clipp"):
        load_experiment("smoke", ["optim.grad_clipp=1"])
    with pytest.raises(ConfigError, match="no experiment"):
        load_experiment("no_such_experiment")
    with pytest.raises(ConfigError, match="precision"):
        load_experiment("smoke", ["train.precision=fp8"])


def test_experiments_listed_in_help():
    exps = list_experiments()
    assert {"base", "smoke", "scale_sweep"} <= set(exps)
    out = subprocess.run(
        [sys.executable, "-m", "pyg_mpnn.train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in ("base", "smoke", "scale_sweep"):
        assert f"  {name} " in out


def test_noam_matches_the_original_formula():
    # NoamOpt(d_model=128, factor=2, warmup=4000).rate(step)
    d, f, w = 128, 2.0, 4000
    for step in (1, 10, 3999, 4000, 4001, 100000):
        expected = f * (d**-0.5 * min(step**-0.5, step * w**-1.5))
        assert noam_lr(step, d, f, w) == pytest.approx(expected, rel=1e-12)
    assert noam_lr(4000, d) > noam_lr(3000, d) and noam_lr(4000, d) > noam_lr(6000, d)
