import dataclasses
import re
import subprocess
import sys
import typing

import pytest
import yaml

from pyg_mpnn.train import __main__ as train_cli
from pyg_mpnn.train.config import (
    EXPERIMENTS_DIR,
    Config,
    ConfigError,
    list_experiments,
    load_experiment,
)
from pyg_mpnn.train.schedule import noam_lr


def test_base_has_the_originals_hyperparameters():
    cfg = load_experiment("base")
    m = cfg.model
    assert (m.hidden_dim, m.num_encoder_layers, m.num_decoder_layers, m.k_neighbors) == (
        128,
        3,
        3,
        48,
    )
    assert m.augment_eps == 0.2 and m.dropout == 0.1
    assert cfg.loss.label_smoothing == 0.1
    assert cfg.schedule.factor == 2.0 and cfg.schedule.warmup_steps == 4000
    assert cfg.data.max_tokens == 10000
    assert cfg.optim.betas == [0.9, 0.98] and cfg.optim.eps == 1e-9


def test_experiment_merges_over_base_and_set_overrides():
    cfg = load_experiment("smoke", ["optim.grad_clip=0.5", "model.hidden_dim=24", "data.path=/x/y"])
    assert cfg.model.hidden_dim == 24  # --set beats the experiment
    assert cfg.model.k_neighbors == 16  # experiment beats base
    assert cfg.model.augment_eps == 0.2  # base fills the rest
    assert cfg.optim.grad_clip == 0.5 and isinstance(cfg.optim.grad_clip, float)
    assert cfg.data.path == "/x/y"
    assert cfg.name == "smoke"


@pytest.mark.parametrize("name", sorted(list_experiments()))
def test_every_experiment_loads(name):
    assert load_experiment(name).name == name


def test_unknown_keys_and_experiments_are_errors():
    with pytest.raises(ConfigError, match=r"'optim.grad_clipp' \(did you mean optim.grad_clip\?\)"):
        load_experiment("smoke", ["optim.grad_clipp=1"])
    with pytest.raises(ConfigError, match="'sweep.sizez'"):  # sweep is a typed section too
        load_experiment("scale_sweep", ["sweep.sizez=[[8, 1]]"])
    with pytest.raises(ConfigError, match="'model.dim'"):
        load_experiment("smoke", ["model={dim: 3}"])
    with pytest.raises(ConfigError, match="no experiment"):
        load_experiment("no_such_experiment")
    with pytest.raises(ConfigError, match="precision"):
        load_experiment("smoke", ["train.precision=fp8"])


@pytest.mark.parametrize(
    "item, message",
    [
        ("optim.eps=abc", "optim.eps: expected float, got str 'abc' (--set)"),
        ("train.max_steps=1.5", "train.max_steps: expected int or null, got float 1.5 (--set)"),
        ("train.progress=1", "train.progress: expected bool, got int 1 (--set)"),
        ("model.freeze=W_e", "model.freeze: expected list of str, got str 'W_e' (--set)"),
        ("model.freeze=[W_e, 3]", "model.freeze[1]: expected str, got int 3 (--set)"),
        ("model.hidden_dim=null", "model.hidden_dim: expected int, got null (--set)"),
        (
            "train.distributed=mpi",
            "train.distributed: expected one of auto|none|ddp|fsdp, got str 'mpi' (--set)",
        ),
        ("optim.accumulate=0", "optim.accumulate: expected a value >= 1, got 0 (--set)"),
        ("optim.betas=[0.9]", "optim.betas: expected two floats, got [0.9] (--set)"),
    ],
)
def test_a_wrong_value_names_its_key_path_and_the_expected_type(item, message):
    with pytest.raises(ConfigError) as err:
        load_experiment("smoke", [item])
    assert str(err.value) == message
    assert err.value.key == message.split(":")[0]


def test_a_wrong_type_in_an_experiment_file_names_the_experiment(tmp_path):
    (tmp_path / "base.yaml").write_text((EXPERIMENTS_DIR / "base.yaml").read_text())
    (tmp_path / "mine.yaml").write_text("data:\n  max_tokens: lots\n")
    with pytest.raises(ConfigError, match=r"data.max_tokens: expected int, .*experiment mine"):
        load_experiment("mine", directory=tmp_path)
    (tmp_path / "mine.yaml").write_text("data:\n  max_tokenz: 3\n")
    with pytest.raises(ConfigError, match=r"'data.max_tokenz'.*mine.yaml"):
        load_experiment("mine", directory=tmp_path)


def test_numbers_convert_only_without_loss():
    cfg = load_experiment(
        "smoke", ["train.max_residues=1e6", "optim.grad_clip=1", "schedule.lr=1e-4"]
    )
    assert cfg.train.max_residues == 1_000_000 and type(cfg.train.max_residues) is int
    assert cfg.optim.grad_clip == 1.0 and type(cfg.optim.grad_clip) is float
    assert cfg.schedule.lr == 1e-4  # YAML 1.1 would have read the string '1e-4'


def test_sections_are_checked_whenever_built():
    cfg = load_experiment("smoke")
    with pytest.raises(ConfigError, match="optim.eps: expected float"):
        dataclasses.replace(cfg.optim, eps="small")
    with pytest.raises(ConfigError, match="train.max_residues: expected int or null"):
        cfg.train.max_residues = "many"  # an assignment too (the sweep sets budgets so)
    cfg.train.max_residues = 1e3
    assert type(cfg.train.max_residues) is int
    bigger = cfg.override(["model.hidden_dim=64"])
    assert bigger.model.hidden_dim == 64 and cfg.model.hidden_dim == 32
    assert cfg.override({"data.transform": {"name": "spatial_crop"}}).data.transform == {
        "name": "spatial_crop"
    }
    with pytest.raises(ConfigError, match="'model.hidden'"):
        cfg.override({"model.hidden": 64})


def _base_yaml_keys() -> dict[str, str]:
    """``{dotted key: its comment}`` of every key line of base.yaml (two levels)."""
    out, section = {}, None
    for line in (EXPERIMENTS_DIR / "base.yaml").read_text().splitlines():
        m = re.match(r"^( *)(\w+):(.*)$", line)
        if not m:
            continue
        indent, key, rest = m.groups()
        section = key if not indent else section
        comment = rest.split("#", 1)[1].strip() if "#" in rest else ""
        out[key if not indent else f"{section}.{key}"] = comment
    return out


def _fields(cls, prefix="") -> list[str]:
    """Every field's dotted key path, the sections' and their fields'."""
    hints, out = typing.get_type_hints(cls), []
    for f in dataclasses.fields(cls):
        out.append(prefix + f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            out += _fields(hints[f.name], f"{prefix}{f.name}.")
    return out


def test_base_yaml_documents_every_field_and_round_trips():
    documented = _base_yaml_keys()
    fields = _fields(Config)
    assert set(documented) == set(fields) - {"name"}  # name: the experiment's file name
    assert not [k for k, comment in documented.items() if not comment]
    cfg = load_experiment("base")
    raw = yaml.safe_load((EXPERIMENTS_DIR / "base.yaml").read_text())
    assert cfg.to_dict() == {**raw, "name": "base"}
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_cli_misuse_exits_2(tmp_path):
    for argv in (
        ["--set", "optim.grad_clipp=1"],
        ["--set", "optim.eps=abc"],
        ["--set", "optim.eps"],
        ["--exp", "no_such_experiment"],
        ["--exp", "knn_ablation", "--set", "sweep.points=[{name: a, set: {model.k: 8}}]"],
    ):
        assert train_cli.main([*argv, "--print-config", "--out", str(tmp_path)]) == 2, argv
    with pytest.raises(ConfigError, match=r"sweep.points\[1\].set: unknown .*'model.k' "):
        load_experiment("knn_ablation", ["sweep.points=[{set: {}}, {set: {model.k: 8}}]"])
    run = subprocess.run(
        [sys.executable, "-m", "pyg_mpnn.train", "--set", "optim.eps=abc", "--print-config"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "optim.eps: expected float, got str 'abc'" in run.stderr


def test_print_config_is_the_typed_config(capsys):
    assert train_cli.main(["--exp", "smoke", "--set", "optim.grad_clip=2", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == load_experiment("smoke", ["optim.grad_clip=2"]).to_dict()
    assert printed["optim"]["grad_clip"] == 2.0


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


def test_sweep_replicate_is_one_size_or_a_list_each_checked():
    one = load_experiment("scale_sweep", ["sweep.replicate={size: [32, 1], seed: 3}"])
    assert one.sweep.replicates == [{"size": [32, 1], "seed": 3}]
    two = load_experiment("scale_sweep", ["sweep.replicate=[{size: [16, 1]}, {size: [32, 1]}]"])
    assert [r["size"] for r in two.sweep.replicates] == [[16, 1], [32, 1]]
    assert load_experiment("scale_sweep", ["sweep.replicate=null"]).sweep.replicates == []
    with pytest.raises(ConfigError, match=r"sweep.replicate\[1\].size"):
        load_experiment("scale_sweep", ["sweep.replicate=[{size: [16, 1]}, {size: [32]}]"])
    with pytest.raises(ConfigError, match=r"sweep.replicate\b"):
        load_experiment("scale_sweep", ["sweep.replicate={size: [16, 1], seeds: 2}"])
