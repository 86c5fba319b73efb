"""The six findings of `diagnose`, each a pure function of a run's series and the thresholds.

Every check looks at the *window*: the tracked steps after the first ``skip`` fraction of the run
(initialisation and the start of warm-up are not a diagnosis). A condition "stays" when it holds
at ``persist`` or more of the window's tracking steps.

(a) ``low_gradient``: a layer whose gradient RMS stays ``grad_gap``x or more below the median of
    its peers' gradient RMS at the same step, or that has no gradient at all while its weights
    are tracked: not contributing, or not being trained. Peers: the MessagePassing layers, the
    head and any added module. The embeddings (stack ``embed``: ``features``, ``W_e``, ``W_s``;
    the stacks are the model's, :meth:`pyg_mpnn.nn.ProteinMPNN.blocks`) are only checked
    for a missing gradient (frozen): their raw gradient scale is not comparable (``W_s`` reaches
    the loss only through the decoder's causal edges and sits 7-40x below ``W_e`` in healthy
    runs); a mis-scaled embedding shows in (b).
(b) ``update_ratio``: a layer whose median update/weight ratio in the window is above
    ``update_target * update_factor`` (unstable) or below ``update_target / update_factor``
    (frozen).
(c) ``gradient_variance``: over the last half of the window the training loss plateaus (relative
    change of its median between the two quarters < ``plateau``) while a layer's gradient
    variance (RMS^2) grows ``variance_rise``x or more. When the run was validated at least twice
    in that half, the validation loss must be flat too (improved by less than
    ``valid_plateau``, relative): a model leaving the composition plateau improves on held-out
    proteins faster than its noisy training loss shows, and its gradients grow for a good reason.
(d) ``stuck``: the global gradient norm falls ``vanish``x or more between the first and last
    quarter of the window while the loss stays far from its best (last-quarter median more than
    ``stuck_gap`` nats above the best value seen, or less than ``stuck_gap`` below the first).
(e) ``depth``: within a stack of layers (the encoder, the decoder: every stack but the
    embeddings, the head and added modules), the activation RMS of the last layer over the
    first grows or shrinks by ``depth_factor``x or more (stays), or one layer's activation RMS
    falls below ``dead_activation``.
(f) ``non_finite``: any non-finite value; the first step, and the layer where it appeared (the
    first activation in forward order, else the gradient nearest the output, else a weight).

Layers the run froze on purpose (``model.freeze``, :meth:`RunSeries.frozen_by_config`) are not
trained by design: (a)'s "no gradient" and (b) skip them. A layer that stalls without being
frozen in the config is still reported.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # only annotations: the CLI's --help reads Thresholds without aim
    from pyg_mpnn.diagnose.series import RunSeries


@dataclass
class Thresholds:
    grad_gap: float = 10.0
    update_target: float = 1e-3
    update_factor: float = 30.0
    plateau: float = 0.02
    valid_plateau: float = 0.005
    variance_rise: float = 2.0
    vanish: float = 10.0
    stuck_gap: float = 0.1
    depth_factor: float = 10.0
    dead_activation: float = 1e-3
    skip: float = 0.2
    persist: float = 0.8

    HELP = {
        "grad_gap": "(a) gradient RMS this many times below the median of its peers",
        "update_target": "(b) the healthy update/weight ratio",
        "update_factor": "(b) flag ratios this many times above or below the target",
        "plateau": "(c) relative loss change that counts as a plateau",
        "valid_plateau": "(c) relative validation-loss improvement that means no plateau",
        "variance_rise": "(c) growth of a layer's gradient variance over the last half",
        "vanish": "(d) fall of the global gradient norm, first to last quarter",
        "stuck_gap": "(d) nats above the best loss (or below the first) that count as stuck",
        "depth_factor": "(e) last/first layer activation RMS ratio within a stack",
        "dead_activation": "(e) activation RMS below this is a dead layer",
        "skip": "fraction of the run (tracked steps) ignored at the start",
        "persist": "fraction of the window's tracking steps a condition must hold",
    }

    def table(self) -> str:
        lines = ["| threshold | value | meaning |", "|---|---|---|"]
        for k, v in asdict(self).items():
            lines.append(f"| `{k}` | {v:g} | {self.HELP[k]} |")
        return "\n".join(lines)


@dataclass
class Finding:
    code: str  # a..f
    title: str
    layers: list[str]
    steps: tuple[int, int]
    evidence: str
    remedy: str
    data: dict = field(default_factory=dict)

    def markdown(self) -> str:
        return (
            f"### ({self.code}) {self.title}: {', '.join(self.layers) or '(global)'}\n\n"
            f"* steps {self.steps[0]}–{self.steps[1]}\n* evidence: {self.evidence}\n"
            f"* usual remedy: {self.remedy}\n"
        )


def window(steps: list[int], th: Thresholds) -> list[int]:
    """The steps (sorted) the checks judge: those after the first ``th.skip`` fraction of the
    run and after step 1 (at least the last step)."""
    if not steps:
        return []
    lo = steps[0] + th.skip * (steps[-1] - steps[0])
    w = [s for s in steps if s >= lo and s > 1]
    return w or steps[-1:]


def _at(series: tuple[list, list]) -> dict:
    return dict(zip(*series))


def _peer_group(rs: RunSeries, layer: str) -> str | None:
    """Embeddings (the blocks of stack ``embed``) have no peers; every other layer is a peer
    of every other."""
    return None if rs.stack(layer) == "embed" else "body"


def low_gradient(rs: RunSeries, th: Thresholds) -> list[Finding]:
    grads = {k: _at(v) for k, v in rs.layer_series("gradient").items()}
    weights = rs.layer_series("weight")
    steps = window(sorted({s for g in grads.values() for s in g}), th)
    out, frozen = [], set(rs.frozen_by_config())
    for layer, (ws, _) in weights.items():
        if layer not in grads and ws and layer not in frozen:
            w = window(ws, th)
            out.append(
                Finding(
                    "a",
                    "no gradient (not being trained)",
                    [layer],
                    (w[0], w[-1]),
                    f"weights tracked at {len(ws)} steps, no gradient recorded",
                    "check requires_grad / the optimizer's parameter groups; an "
                    "embedding left frozen makes the layers above adapt to its "
                    "random initialisation",
                )
            )
    if not steps:
        return out
    groups = {layer: _peer_group(rs, layer) for layer in grads}
    for layer, g in grads.items():
        ratios, hits = [], 0
        group = groups[layer]
        peers = [gg for k, gg in grads.items() if groups[k] == group]
        if group is None or len(peers) < 3:
            continue
        for s in steps:
            vals = [gg[s] for gg in peers if s in gg and math.isfinite(gg[s])]
            if s not in g or not vals or not math.isfinite(g[s]):
                continue
            med = float(np.median(vals))
            r = med / g[s] if g[s] > 0 else math.inf
            ratios.append(r)
            hits += r >= th.grad_gap
        if ratios and hits >= th.persist * len(ratios):
            out.append(
                Finding(
                    "a",
                    "gradient scale far below its peers",
                    [layer],
                    (steps[0], steps[-1]),
                    f"gradient RMS {np.median([g[s] for s in steps if s in g]):.2e} (median over "
                    f"the window) is {np.median(ratios):.0f}x below the median of its peers "
                    f"(MessagePassing layers, head, added modules) "
                    f"(min {min(ratios):.0f}x) at {hits}/{len(ratios)} tracking steps",
                    "a module that is not contributing (its output is noise or ignored) or not "
                    "being trained: remove or fix it; for an embedding, check its scale and that "
                    "it reaches the loss",
                    {"ratio": float(np.median(ratios))},
                )
            )
    return out


def update_ratio(rs: RunSeries, th: Thresholds) -> list[Finding]:
    out = []
    hi, lo = th.update_target * th.update_factor, th.update_target / th.update_factor
    frozen = set(rs.frozen_by_config())
    for layer, (s, v) in rs.layer_series("update", "update_ratio").items():
        if layer in frozen:
            continue
        w = set(window(s, th))
        vals = [x for st, x in zip(s, v) if st in w and math.isfinite(x)]
        if not vals:
            continue
        med = float(np.median(vals))
        rng = (min(w), max(w))
        if med > hi:
            out.append(
                Finding(
                    "b",
                    "update/weight ratio too high (unstable)",
                    [layer],
                    rng,
                    f"median update/weight {med:.2e} > {hi:.1e} (target "
                    f"{th.update_target:.0e}); max {max(vals):.2e}",
                    "lower the learning rate (schedule.factor), lengthen warm-up, "
                    "clip gradients (optim.grad_clip)",
                    {"median": med},
                )
            )
        elif med < lo:
            out.append(
                Finding(
                    "b",
                    "update/weight ratio too low (frozen)",
                    [layer],
                    rng,
                    f"median update/weight {med:.2e} < {lo:.1e} (target {th.update_target:.0e})",
                    "the layer barely moves: check it is trained (requires_grad, "
                    "optimizer groups), its initial scale (huge weights), the "
                    "learning rate",
                    {"median": med},
                )
            )
    return out


def _quarters(steps: list[int]) -> tuple[list[int], list[int], list[int], list[int]]:
    n = len(steps)
    q = [steps[i * n // 4 : (i + 1) * n // 4] for i in range(4)]
    return q[0], q[1], q[2], q[3]


def _median_over(d: dict, steps: list[int]) -> float:
    vals = [d[s] for s in steps if s in d and math.isfinite(d[s])]
    return float(np.median(vals)) if vals else math.nan


def gradient_variance(rs: RunSeries, th: Thresholds) -> list[Finding]:
    ls, lv = rs.loss()
    loss = _at((ls, lv))
    w = window(ls, th)
    if len(w) < 8:
        return []
    half = w[len(w) // 2 :]
    a, b = half[: len(half) // 2], half[len(half) // 2 :]
    la, lb = _median_over(loss, a), _median_over(loss, b)
    if not (math.isfinite(la) and abs(lb - la) / max(abs(la), 1e-12) < th.plateau):
        return []
    vs, vv = rs.series("loss", subset="valid")
    valid = [x for s, x in zip(vs, vv) if half[0] <= s <= half[-1] and math.isfinite(x)]
    if len(valid) >= 2 and (valid[0] - valid[-1]) / max(abs(valid[0]), 1e-12) >= th.valid_plateau:
        return []  # still improving on held-out proteins: not a plateau
    out = []
    for layer, series in rs.layer_series("gradient").items():
        g = _at(series)
        va = _median_over({s: x * x for s, x in g.items()}, [s for s in g if a[0] <= s <= a[-1]])
        vb = _median_over({s: x * x for s, x in g.items()}, [s for s in g if b[0] <= s])
        if math.isfinite(va) and va > 0 and vb / va >= th.variance_rise:
            out.append(
                Finding(
                    "c",
                    "gradient variance rising on a loss plateau",
                    [layer],
                    (a[0], b[-1]),
                    f"gradient variance (RMS^2) {va:.2e} -> {vb:.2e} ({vb / va:.1f}x) "
                    f"while the training loss moved {la:.3f} -> {lb:.3f}",
                    "lower the learning rate (or decay it sooner), add regularisation "
                    "(weight decay, dropout), increase the batch size",
                    {"rise": vb / va},
                )
            )
    return out


def stuck(rs: RunSeries, th: Thresholds) -> list[Finding]:
    gs, gv = rs.series("grad_norm")
    ls, lv = rs.loss()
    w = window(gs, th)
    if len(w) < 8 or not ls:
        return []
    q0, _, _, q3 = _quarters(w)
    g, loss = _at((gs, gv)), _at((ls, lv))
    g0, g3 = _median_over(g, q0), _median_over(g, q3)
    l0, l3 = _median_over(loss, q0), _median_over(loss, q3)
    finite = [x for x in lv if math.isfinite(x)]
    best = min(finite) if finite else math.nan
    if not (g3 > 0 and g0 / g3 >= th.vanish):
        return []
    if not (l3 - best > th.stuck_gap or l0 - l3 < th.stuck_gap):
        return []
    return [
        Finding(
            "d",
            "gradients vanishing while the loss stays high",
            ["(global)"],
            (q0[0], q3[-1]),
            f"global gradient norm {g0:.2e} -> {g3:.2e} ({g0 / g3:.0f}x lower) while "
            f"the training loss went {l0:.3f} -> {l3:.3f} (best {best:.3f})",
            "a stuck optimiser: check the learning-rate schedule (decayed to ~0?), "
            "saturated or dead units (see (e)), a too-strong regularisation; restart "
            "from an earlier checkpoint with a higher learning rate",
            {"drop": g0 / g3},
        )
    ]


NOT_A_DEPTH = ("embed", "head", "other")  # stacks that are not a sequence of layers


def depth(rs: RunSeries, th: Thresholds) -> list[Finding]:
    out = []
    for part in ("node", "edge"):
        acts = {k: _at(v) for k, v in rs.layer_series("activation", part=part).items()}
        stacks = dict.fromkeys(rs.stack(layer) for layer in acts)  # in model order
        for stack in [s for s in stacks if s not in NOT_A_DEPTH]:
            layers = [layer for layer in acts if rs.stack(layer) == stack]
            steps = window(sorted({s for layer in layers for s in acts[layer]}), th)
            for layer in layers:
                dead = [
                    s for s in steps if s in acts[layer] and acts[layer][s] < th.dead_activation
                ]
                if steps and len(dead) >= th.persist * len(steps):
                    out.append(
                        Finding(
                            "e",
                            "activations collapsed (dead layer)",
                            [layer],
                            (steps[0], steps[-1]),
                            f"{part} activation RMS < {th.dead_activation:g} at "
                            f"{len(dead)}/{len(steps)} tracking steps",
                            "check the layer's inputs and normalisation; lower the "
                            "learning rate; re-initialise",
                        )
                    )
            if len(layers) < 2:
                continue
            first, last = layers[0], layers[-1]
            ratios = [
                acts[last][s] / acts[first][s]
                for s in steps
                if s in acts[first] and s in acts[last] and acts[first][s] > 0
            ]
            hits = [r for r in ratios if r >= th.depth_factor or r <= 1 / th.depth_factor]
            if ratios and len(hits) >= th.persist * len(ratios):
                med = float(np.median(ratios))
                what = "growing" if med > 1 else "collapsing"
                out.append(
                    Finding(
                        "e",
                        f"{part} activations {what} with depth",
                        [first, last],
                        (steps[0], steps[-1]),
                        f"{part} activation RMS {last}/{first} = {med:.2g} (median)",
                        "normalise the residual stream (LayerNorm placement), scale "
                        "residual branches down, check initialisation",
                    )
                )
    return out


def _priority(kind: str) -> int:
    return {"activation": 0, "gradient": 1, "update": 2, "weight": 3}.get(kind, 4)


def non_finite(rs: RunSeries, th: Thresholds) -> list[Finding]:
    bad = [
        r
        for r in rs.rows
        if not math.isfinite(r["value"]) and not r["name"].startswith("jacobian_")
    ]
    if not bad:
        return []
    first = min(r["step"] for r in bad)
    at = [r for r in bad if r["step"] == first]
    per_layer = [r for r in at if r["layer"]]

    index = {layer: i for i, layer in enumerate(rs.layers())}

    def key(r):
        # forward order for activations; gradients appear first near the output
        i = index[r["layer"]]
        return _priority(r["kind"]), -i if r["kind"] == "gradient" else i

    per_layer.sort(key=key)
    origin = per_layer[0] if per_layer else None
    names = sorted(
        {r["name"] + (f"[{r['subset']}]" if r["subset"] else "") for r in at if not r["layer"]}
    )
    layers = [origin["layer"]] if origin else ["(global)"]
    last = max(r["step"] for r in bad)
    affected = sorted({r["layer"] for r in per_layer}, key=index.get)
    ev = (
        f"first non-finite value at step {first}"
        + (
            f": {origin['kind']} {origin['part'] or ''} norm of {origin['layer']} = "
            f"{origin['value']}"
            if origin
            else ""
        )
        + (f"; also non-finite then: {', '.join(names)}" if names else "")
        + (f"; layers affected at that step: {', '.join(affected)}" if affected else "")
        + f"; {len(bad)} non-finite values up to step {last}"
    )
    return [
        Finding(
            "f",
            "non-finite values",
            layers,
            (first, last),
            ev,
            "find the op that overflows in that layer (fp16/bf16 range, division by a "
            "small norm, log of 0); lower the learning rate, clip gradients, use bf16 "
            "or a GradScaler; check the input batch of that step",
            {"step": first, "layer": layers[0], "kind": origin["kind"] if origin else ""},
        )
    ]


CHECKS = (low_gradient, update_ratio, gradient_variance, stuck, depth, non_finite)


def diagnose(rs: RunSeries, th: Thresholds | None = None) -> list[Finding]:
    th = th or Thresholds()
    out = []
    for check in CHECKS:
        out.extend(check(rs, th))
    return out
