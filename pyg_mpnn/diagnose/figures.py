"""Figures of ``diagnose``: per-layer series grouped by stack and kind, gradient ridge plots,
and the Jacobian probe over training. Each function returns a matplotlib ``Figure`` (no
pyplot state: nothing to close)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from pyg_mpnn.diagnose.series import RunSeries

PANELS = (
    ("weight", "norm", "", "weight RMS"),
    ("activation", "norm", "node", "node activation RMS"),
    ("activation", "norm", "edge", "edge activation RMS"),
    ("activation", "norm", "node_message", "summed messages RMS\n(pre-LN)"),
    ("activation", "norm", "node_residual", "node residual RMS\n(pre-LN)"),
    ("activation", "norm", "edge_residual", "edge residual RMS\n(pre-LN)"),
    ("gradient", "norm", "", "gradient RMS"),
    ("update", "update_ratio", "", "update / weight"),
)


def _color(stack: str, i: int, n: int):
    cmap = colormaps[{"encoder": "Blues", "decoder": "Reds", "head": "Greens"}.get(stack, "Greys")]
    return cmap(0.45 + 0.5 * (i + 1) / (n + 1))


def layer_grid(rs: RunSeries, highlight: set[str] = frozenset()):
    """Rows: kinds (weight, node/edge activation after the layer's LayerNorm, the pre-LayerNorm
    summed messages and residual branches, gradient, update ratio); columns: stacks
    (embeddings, encoder, decoder, head). One line per layer, log scale; layers named by a
    finding are drawn thick and dashed."""
    stacks = list(dict.fromkeys(rs.stack(layer) for layer in rs.layers()))  # model order
    data = {p: rs.layer_series(p[0], p[1], p[2]) for p in PANELS}
    panels = [p for p in PANELS if data[p]] or list(PANELS)  # drop rows with no series (taps)
    fig = Figure(figsize=(3.6 * len(stacks), 2.2 * len(panels)))
    axes = fig.subplots(len(panels), len(stacks), squeeze=False, sharex=True)
    for r, panel in enumerate(panels):
        series, label = data[panel], panel[3]
        for c, stack in enumerate(stacks):
            ax = axes[r][c]
            layers = [k for k in series if rs.stack(k) == stack]  # series: in model order
            if not layers and c > 0:
                ax.set_axis_off()
                continue
            for i, layer in enumerate(layers):
                s, v = series[layer]
                v = [x if math.isfinite(x) and x > 0 else np.nan for x in v]
                hl = layer in highlight
                ax.plot(
                    s,
                    v,
                    lw=2.2 if hl else 1.2,
                    ls="--" if hl else "-",
                    color="C3" if hl and stack == "embed" else _color(stack, i, len(layers)),
                    label=layer,
                )
            if layers and any(np.isfinite(series[k][1]).any() for k in layers):
                ax.set_yscale("log")
                ax.legend(fontsize=6, loc="best")
            if r == 0:
                ax.set_title(stack, fontsize=10)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
            if r == len(panels) - 1:
                ax.set_xlabel("step")
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def ridge(rs: RunSeries, max_rows: int = 12, layers: list[str] | None = None):
    """Ridge plot per MessagePassing layer: gradient histograms over steps (one row per tracked
    step, offset upwards, density normalised per row), x in units of the row's own value."""
    hists = rs.gradient_hists()
    names = layers or [
        k for k in rs.layers() if k in hists and rs.stack(k) not in ("embed", "head", "other")
    ]
    if not names:
        return None
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    for ax, layer in zip(axes.ravel(), names):
        hs = hists[layer]
        idx = np.unique(np.linspace(0, len(hs) - 1, min(max_rows, len(hs))).astype(int))
        sel = [hs[i] for i in idx]
        span = max(max(abs(lo), abs(hi)) for _, (lo, hi), _ in sel) or 1.0
        cmap = colormaps["viridis"]
        for k, (step, (lo, hi), counts) in enumerate(sel):
            counts = np.asarray(counts, dtype=float)
            edges = np.linspace(lo, hi, len(counts) + 1)
            centres = (edges[:-1] + edges[1:]) / 2
            dens = counts / counts.max() if counts.max() > 0 else counts
            base = k * 0.6
            ax.fill_between(
                centres, base, base + dens, color=cmap(k / max(len(sel) - 1, 1)), alpha=0.75, lw=0
            )
            ax.plot(centres, base + dens, color="k", lw=0.4)
            ax.text(span * 1.02, base, f"{step}", fontsize=6, va="bottom")
        ax.set_xlim(-span, span * 1.15)
        ax.set_yticks([])
        ax.set_title(f"{layer}: gradient histograms", fontsize=9)
        ax.set_xlabel("gradient value", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def jacobian_over_training(results: list[dict]):
    """Top-L long-range precision vs step (with the random baseline), and the APC map at the
    first, the best (by top-L precision) and the last probed step next to the contact map."""
    best = max(results, key=lambda r: r["precision_L"])
    shown = (
        [results[0]]
        + ([best] if best is not results[0] and best is not results[-1] else [])
        + ([results[-1]] if len(results) > 1 else [])
    )
    fig = Figure(figsize=(4 * (len(shown) + 2), 3.8))
    ax = fig.subplots(1, len(shown) + 2)
    steps = [r["step"] for r in results]
    ax[0].plot(steps, [r["precision_L"] for r in results], "o-", label="top-L")
    ax[0].plot(steps, [r["precision_L5"] for r in results], "s--", label="top-L/5")
    ax[0].plot(steps, [r["random"] for r in results], ":", color="grey", label="random")
    ax[0].set(
        xlabel="step",
        ylabel="long-range contact precision",
        title=f"categorical Jacobian, {results[0].get('probe', '')}",
    )
    ax[0].legend(fontsize=8)
    for a, r in zip(ax[1:-1], shown):
        S = np.clip(r["S_apc"], 0, None)
        a.imshow(S, cmap="Greys", vmin=0, vmax=np.percentile(S, 99) or 1.0)
        a.set_title(f"Jacobian (APC), step {r['step']}: P@L {r['precision_L']:.2f}", fontsize=9)
    ax[-1].imshow(results[-1]["contacts"], cmap="Blues")
    ax[-1].set_title("contacts (Cb < 8 A)", fontsize=9)
    fig.tight_layout()
    return fig


def loss_panel(rs: RunSeries):
    fig = Figure(figsize=(10, 3.4))
    ax = fig.subplots(1, 2)
    s, v = rs.loss()
    ax[0].plot(s, v, lw=0.7, label="train loss")
    vs, vv = rs.series("loss", subset="valid")
    if vs:
        ax[0].plot(vs, vv, "s-", ms=3, label="valid loss")
    ax[0].set(xlabel="step", ylabel="loss (nats)")
    ax[0].legend(fontsize=8)
    gs, gv = rs.series("grad_norm")
    ax[1].plot(gs, [x if math.isfinite(x) else np.nan for x in gv], lw=0.7, color="C4")
    ax[1].set(xlabel="step", ylabel="global gradient norm", yscale="log")
    fig.tight_layout()
    return fig


def compare_gradients(runs: dict, highlight: str = "noise"):
    """Gradient RMS per layer over steps for several runs side by side (``{title: RunSeries}``);
    the layer ``highlight`` drawn thick and dashed (the noise-module demonstration)."""
    fig = Figure(figsize=(5.5 * len(runs), 3.8))
    axes = fig.subplots(1, len(runs), sharey=True, squeeze=False)
    for ax, (title, rs) in zip(axes[0], runs.items()):
        series = rs.layer_series("gradient")
        for i, layer in enumerate(series):  # in model order
            s, v = series[layer]
            hl = layer == highlight
            ax.plot(
                s,
                v,
                lw=2.4 if hl else 1.2,
                ls="--" if hl else "-",
                color="k" if hl else f"C{i % 10}",
                label=layer,
            )
        ax.set(yscale="log", xlabel="step", title=title)
        ax.legend(fontsize=7, ncol=2)
    axes[0][0].set_ylabel("gradient RMS")
    fig.tight_layout()
    return fig
