"""Findings (c), (d), (e) on series built in memory (the checks are pure functions of the rows):
each fires on the pattern it describes and stays quiet on its healthy counterpart."""

import math

from pyg_mpnn.diagnose.findings import Thresholds, depth, gradient_variance, stuck
from pyg_mpnn.diagnose.series import RunSeries

STEPS = list(range(1, 201))


def row(step, name, value, **ctx):
    return {
        "step": step,
        "name": name,
        "value": value,
        "subset": ctx.get("subset", ""),
        "layer": ctx.get("layer", ""),
        "stack": ctx.get("stack", ""),
        "kind": ctx.get("kind", ""),
        "part": ctx.get("part", ""),
    }


def run(loss, grad=None, acts=None, valid=None):
    rows = [row(s, "loss", loss(s), subset="train") for s in STEPS]
    if valid:
        rows += [row(s, "loss", valid(s), subset="valid") for s in STEPS[::20]]
    if grad:
        for s in STEPS[::10]:
            rows.append(
                row(s, "norm", grad(s), layer="decoder.1", stack="decoder", kind="gradient")
            )
            rows.append(row(s, "grad_norm", grad(s)))
    for layer, f in (acts or {}).items():
        for s in STEPS[::10]:
            rows.append(
                row(
                    s,
                    "norm",
                    f(s),
                    layer=layer,
                    stack=layer.split(".")[0],
                    kind="activation",
                    part="node",
                )
            )
    return RunSeries(rows)


def test_c_rising_variance_on_a_plateau():
    flat = lambda s: 2.0
    found = gradient_variance(run(flat, grad=lambda s: 1e-3 * math.exp(s / 60)), _th())
    assert [f.layers for f in found] == [["decoder.1"]] and found[0].data["rise"] >= 2
    assert gradient_variance(run(flat, grad=lambda s: 1e-3), _th()) == []
    falling = lambda s: 3.0 - s / 100
    assert gradient_variance(run(falling, grad=lambda s: 1e-3 * math.exp(s / 60)), _th()) == []
    # a flat training loss while validation still improves (leaving the composition plateau)
    improving = lambda s: 2.9 - s / 2000
    assert (
        gradient_variance(run(flat, grad=lambda s: 1e-3 * math.exp(s / 60), valid=improving), _th())
        == []
    )
    assert (
        gradient_variance(
            run(flat, grad=lambda s: 1e-3 * math.exp(s / 60), valid=lambda s: 2.9), _th()
        )
        != []
    )


def test_d_vanishing_gradients_while_the_loss_is_high():
    high = lambda s: 2.9
    found = stuck(run(high, grad=lambda s: math.exp(-s / 20)), _th())
    assert len(found) == 1 and found[0].data["drop"] >= 10
    converged = lambda s: 3.0 * math.exp(-s / 30) + 0.5
    assert stuck(run(converged, grad=lambda s: math.exp(-s / 20)), _th()) == []


def test_e_activations_blowing_up_with_depth_and_dead_layers():
    loss = lambda s: 2.0
    grow = {"encoder.0": lambda s: 1.0, "encoder.1": lambda s: 4.0, "encoder.2": lambda s: 30.0}
    found = depth(run(loss, acts=grow), _th())
    assert [(f.title, f.layers) for f in found] == [
        ("node activations growing with depth", ["encoder.0", "encoder.2"])
    ]
    dead = {"decoder.0": lambda s: 1.0, "decoder.1": lambda s: 1e-5 if s > 30 else 1.0}
    titles = {f.title for f in depth(run(loss, acts=dead), _th())}
    assert "activations collapsed (dead layer)" in titles
    healthy = {f"encoder.{i}": (lambda s: 1.0) for i in range(3)}
    assert depth(run(loss, acts=healthy), _th()) == []


def _th():
    return Thresholds()
