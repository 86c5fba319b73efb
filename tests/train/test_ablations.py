"""The three ablation experiments end to end on a tiny budget (the real CLI, the real model and
data), and the spatial crop's supervision inside the real training loop."""

import csv
import json

import pytest
import torch
from _train_tiny import TINY_MODEL

from pyg_mpnn.sweep import POINT_COLUMNS
from pyg_mpnn.train.__main__ import main
from pyg_mpnn.train.config import load_experiment

TINY = TINY_MODEL + [
    "data.max_tokens=300",
    "data.valid_max_proteins=2",
    "sweep.token_budget=300",
    "sweep.max_minutes=null",
    "schedule.warmup_steps=5",
    "track.layer_every=0",
]

EXPECTED = {
    "enc_dec_ablation": (
        ["e1+d5", "e2+d4", "e3+d3", "e4+d2", "e5+d1"],
        ["model.num_encoder_layers", "model.num_decoder_layers"],
    ),
    "knn_ablation": (["k16", "k24", "k32", "k48", "k64"], ["model.k_neighbors"]),
    "spatial_crop": (["whole", "crop50-20", "crop-over-1000"], ["data.transform"]),
}


@pytest.mark.parametrize("exp", sorted(EXPECTED))
def test_ablation_writes_table_and_plot(exp, tiny_dataset, tmp_path):
    names, keys = EXPECTED[exp]
    aim = "true" if exp == "spatial_crop" else "false"
    extra = ["model.hidden_dim=8"] if exp != "spatial_crop" else []
    args = ["--exp", exp, "--data", str(tiny_dataset), "--out", str(tmp_path)]
    for item in TINY + extra + [f"track.aim={aim}"]:
        args += ["--set", item]
    assert main(args) == 0
    rows = list(csv.DictReader(open(tmp_path / f"{exp}.csv")))
    assert [r["point"] for r in rows] == names
    assert list(rows[0]) == ["point", *keys, *POINT_COLUMNS]
    for r in rows:
        assert int(r["residues_trained"]) >= 300 and int(r["steps"]) >= 1
        assert 1.0 < float(r["valid_ppl"]) < 100 and 0 <= float(r["valid_acc"]) <= 1
        assert float(r["residues_per_s"]) > 0 and float(r["flops_per_residue"]) > 0
    md = (tmp_path / f"{exp}.md").read_text().splitlines()
    assert len(md) == 2 + len(names) and all(n in md[2 + i] for i, n in enumerate(names))
    assert (tmp_path / f"{exp}.png").read_bytes()[:4] == b"\x89PNG"
    cfg = json.loads((tmp_path / "sweep_config.json").read_text())
    assert cfg["name"] == exp
    if exp == "enc_dec_ablation":  # a fixed total depth; an encoder layer costs more (edges)
        flops = [float(r["flops_per_residue"]) for r in rows]
        assert flops == sorted(flops) and max(flops) / min(flops) < 2
        assert [int(r["model.num_encoder_layers"]) for r in rows] == [1, 2, 3, 4, 5]
    if exp == "knn_ablation":  # more neighbours, more work per residue
        flops = [float(r["flops_per_residue"]) for r in rows]
        assert flops == sorted(flops) and flops[-1] > 2 * flops[0]
    if exp == "spatial_crop":
        whole, crop, crop_big = rows
        assert whole["data.transform"] in ("", "None")
        assert json.loads(crop["data.transform"])["name"] == "spatial_crop"
        # whole graphs supervise every residue; the crop only its inner sphere
        assert float(crop["loss_residues_per_s"]) < float(crop["residues_per_s"])
        # every tiny protein is under min_residues: trained whole, so exactly as the whole point
        assert json.loads(crop_big["data.transform"])["min_residues"] == 1000
        assert crop_big["train_loss"] == whole["train_loss"] != crop["train_loss"]
        from pyg_mpnn.track.aimio import open_runs

        assert {r.name for r in open_runs(tmp_path / "aim")} == set(names)


def test_trainer_loss_uses_crop_supervision(tiny_dataset, tmp_path):
    """The trainer's step meter counts exactly the loss_mask residues of the cropped batch it
    trained on (rebuilt here from the same seeded transform, sampler and data)."""
    from pyg_mpnn.train.data import RunData
    from pyg_mpnn.train.trainer import Trainer

    spec = "{name: spatial_crop, context_radius: 15, inner_radius: 7, seed: 3}"
    cfg = load_experiment(
        "smoke",
        TINY_MODEL
        + [
            f"data.path={tiny_dataset}",
            "data.max_tokens=300",
            "track.aim=false",
            "train.max_steps=1",
            f"data.transform={spec}",
        ],
    )
    t = Trainer(cfg, tmp_path)
    t.fit()
    data = RunData(cfg.data, cfg.seed, progress=False)
    data.sampler.set_epoch(0)
    batch = next(iter(data.train_loader))
    sup = batch.mask & batch.design_mask & batch.loss_mask
    assert 0 < int(sup.sum()) < batch.num_nodes
    assert t.recent[0]["count"] == int(sup.sum())
    assert t.residues_seen == batch.num_nodes
    # the uncropped run on the same data counts every valid designed residue
    cfg2 = load_experiment(
        "smoke",
        TINY_MODEL
        + [
            f"data.path={tiny_dataset}",
            "data.max_tokens=300",
            "track.aim=false",
            "train.max_steps=1",
        ],
    )
    t2 = Trainer(cfg2, tmp_path / "whole")
    t2.fit()
    whole = RunData(cfg2.data, cfg2.seed, progress=False)
    whole.sampler.set_epoch(0)
    b2 = next(iter(whole.train_loader))
    assert not hasattr(b2, "loss_mask") or b2.loss_mask is None
    assert t2.recent[0]["count"] == int((b2.mask & b2.design_mask).sum())
    assert torch.equal(
        batch.seq,
        b2.seq[
            torch.cat(
                [
                    torch.nonzero(b2.batch == g).view(-1)[batch.crop_source[batch.batch == g]]
                    for g in range(batch.num_graphs)
                ]
            )
        ],
    )


def test_point_after_a_completed_epoch_starts_a_fresh_data_order(tiny_dataset, tmp_path):
    """A point that ends exactly at an epoch's end must not leave the shared sampler exhausted
    for the next point (regression: the next point's first batch raised StopIteration)."""
    from pyg_mpnn.sweep import run_sweep

    cfg = load_experiment(
        "knn_ablation",
        TINY
        + [
            f"data.path={tiny_dataset}",
            "track.aim=false",
            "train.epochs=1",
            "sweep.token_budget=1000000",
            "model.hidden_dim=8",
            "sweep.points=[{name: a, set: {model.k_neighbors: 8}},"
            " {name: b, set: {model.k_neighbors: 8}}]",
        ],
    )
    rows = run_sweep(cfg, tmp_path)
    assert [r["point"] for r in rows] == ["a", "b"]
    assert rows[0]["residues_trained"] == rows[1]["residues_trained"] > 1000  # a whole epoch each
    assert rows[0]["steps"] == rows[1]["steps"]
