"""A short real training run writes per-layer norms and histograms into a real Aim repo and the
same scalars into metrics.csv."""

import csv
import math

import pytest

from pyg_mpnn.track.aimio import open_runs
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer

LAYERS = ["features", "W_e", "W_s", "encoder.0", "decoder.0", "decoder.1", "W_out"]
ACTS = [
    ("W_e", "edge"),
    ("W_s", "node"),
    ("encoder.0", "node"),
    ("encoder.0", "edge"),
    ("decoder.0", "node"),
    ("decoder.1", "node"),
]


@pytest.fixture(scope="module")
def run(tiny_dataset, tmp_path_factory):
    from _train_tiny import TINY_MODEL

    out = tmp_path_factory.mktemp("tracked")
    cfg = load_experiment(
        "smoke",
        TINY_MODEL
        + [
            f"data.path={tiny_dataset}",
            "data.max_tokens=300",
            "train.max_steps=4",
            "track.layer_every=2",
            "checkpoint.every_steps=null",
        ],
    )
    result = Trainer(cfg, out).fit()
    runs = open_runs(out / "aim")
    assert len(runs) == 1
    return out, runs[0], result


def sv(metric):
    """(steps, values) of an Aim sequence, in step order."""
    idx, cols = metric.data.items_list()
    return list(idx), list(cols[0])


def _aim_series(run):
    return {(m.name, tuple(sorted(m.context.to_dict().items()))): m for m in run.metrics()}


def test_step_scalars_and_hparams(run):
    out, aim_run, result = run
    assert aim_run.experiment == "smoke"
    assert aim_run.get("hparams")["model"]["hidden_dim"] == 16
    series = _aim_series(aim_run)
    names = {n for n, _ in series}
    for name in (
        "loss",
        "ppl",
        "accuracy",
        "lr",
        "grad_norm",
        "residues_per_s",
        "edges_per_s",
        "data_wait_frac",
        "peak_memory_mb",
        "step_time_s",
        "loss_smoothed",
    ):
        assert name in names, name
    loss = series[("loss", (("subset", "train"),))]
    assert sv(loss)[0] == [1, 2, 3, 4]
    assert all(math.isfinite(v) and v > 0 for v in sv(loss)[1])
    valid = sv(series[("ppl", (("subset", "valid"),))])[1]
    assert valid[-1] == pytest.approx(result["valid_ppl"])
    frac = sv(series[("data_wait_frac", ())])[1]
    assert all(0 <= f < 1 for f in frac)


def test_per_layer_norms_histograms_and_contexts(run):
    out, aim_run, _ = run
    series = _aim_series(aim_run)
    stack = {"features": "embed", "W_e": "embed", "W_s": "embed", "W_out": "head"}

    def ctx(layer, kind, part=None):
        c = {"layer": layer, "kind": kind, "stack": stack.get(layer, layer.split(".")[0])}
        if part:
            c["part"] = part
        return tuple(sorted(c.items()))

    for layer in LAYERS:
        for kind in ("weight", "gradient"):
            m = series[("norm", ctx(layer, kind))]
            assert sv(m)[0] == [1, 2, 4]
            assert all(v > 0 and math.isfinite(v) for v in sv(m)[1])
        ratio = sv(series[("update_ratio", ctx(layer, "update"))])[1]
        assert all(0 < r < 1 for r in ratio), (layer, ratio)
        dist = aim_run.get_distribution_sequence("hist", ctx_dict(ctx(layer, "gradient")))
        assert dist is not None and sv(dist)[0] == [1, 2, 4]
    for layer, part in ACTS:
        m = series[("norm", ctx(layer, "activation", part))]
        assert all(v > 0 for v in sv(m)[1]), (layer, part)
        d = aim_run.get_distribution_sequence("hist", ctx_dict(ctx(layer, "activation", part)))
        hist = sv(d)[1][0]
        assert sum(hist.weights) > 0


def ctx_dict(items):
    from aim.storage.context import Context

    return Context(dict(items))


def test_csv_has_the_same_scalars(run):
    out, aim_run, _ = run
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    keys = {"subset", "layer", "stack", "kind", "part"}
    csv_series = {}
    for r in rows:
        ctx = tuple(sorted((k, r[k]) for k in keys if r[k]))
        csv_series.setdefault((r["name"], ctx), {})[int(r["step"])] = float(r["value"])
    series = _aim_series(aim_run)
    assert set(series) == set(csv_series)
    for key, m in series.items():
        got = dict(zip(*sv(m)))
        for step, v in got.items():
            assert csv_series[key][step] == pytest.approx(v, rel=1e-6, abs=1e-12), key
    hists = (out / "histograms.jsonl").read_text().splitlines()
    assert len(hists) > 3 * len(LAYERS)
