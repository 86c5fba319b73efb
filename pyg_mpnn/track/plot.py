"""Figures from a run folder's ``metrics.csv`` (no Aim needed).

    python -m pyg_mpnn.track.plot RUN_DIR [--out DIR] [--prefix NAME]

writes ``<prefix>_curves.png`` (train/valid perplexity and accuracy against step and time,
learning rate, gradient norm) and ``<prefix>_layers.png`` (per-layer weight, gradient and
activation RMS and update/weight ratio against step, log scale, one line per layer; encoder
layers in blues, decoder layers in reds, embeddings/head in greys), and prints a JSON summary
of the last tracked values per layer.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure

from pyg_mpnn.atomic import save_figure
from pyg_mpnn.track.metrics import read_metrics


def series(rows, name, **ctx) -> tuple[list, list, list]:
    pts = sorted(
        (r["step"], r["wall_s"], r["value"])
        for r in rows
        if r["name"] == name and all(r.get(k, "") == v for k, v in ctx.items())
    )
    last = {}
    for s, w, v in pts:  # a resumed run may have re-written steps: keep the last value
        last[s] = (w, v)
    steps = sorted(last)
    return steps, [last[s][0] for s in steps], [last[s][1] for s in steps]


def _color(layer: str, i: int, n: int):
    cmap = colormaps[
        "Blues"
        if layer.startswith("encoder")
        else "Reds"
        if layer.startswith("decoder")
        else "Greys"
    ]
    return cmap(0.45 + 0.5 * (i + 1) / (n + 1))


def plot_curves(rows, path: Path, title: str = "") -> None:
    fig = Figure(figsize=(15, 4))
    ax = fig.subplots(1, 3)
    s, w, v = series(rows, "ppl", subset="train")
    ax[0].plot(s, v, lw=0.6, alpha=0.5, label="train (per step)")
    es, _, ev = series(rows, "epoch_ppl", subset="train")
    if es:
        ax[0].plot(es, ev, "o-", label="train (epoch)")
    vs, vw, vv = series(rows, "ppl", subset="valid")
    ax[0].plot(vs, vv, "s-", label="valid")
    ax[0].axhline(20, color="grey", ls=":", label="uniform guess (20)")
    ax[0].set(xlabel="optimizer step", ylabel="perplexity", yscale="log", title=title)
    ax[0].legend(fontsize=8)
    if vw:
        ax[1].plot([x / 60 for x in vw], vv, "s-", label="valid ppl")
        _, ta, tv = series(rows, "accuracy", subset="valid")
        ax1b = ax[1].twinx()
        ax1b.plot([x / 60 for x in ta], tv, "^--", color="C2", label="valid accuracy")
        ax1b.set_ylabel("valid accuracy")
        ax[1].set(xlabel="minutes", ylabel="valid perplexity")
        ax[1].legend(loc="upper center", fontsize=8)
    ls, _, lv = series(rows, "lr")
    ax[2].plot(ls, lv, color="C3", label="learning rate")
    ax[2].set(xlabel="optimizer step", ylabel="learning rate")
    gs, _, gv = series(rows, "grad_norm")
    ax2b = ax[2].twinx()
    ax2b.plot(gs, gv, lw=0.6, color="C4", label="grad norm")
    ax2b.set(ylabel="global grad norm", yscale="log")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def layer_table(rows) -> dict:
    out = defaultdict(dict)
    for r in rows:
        if r["name"] in ("norm", "update_ratio") and r["layer"]:
            key = r["kind"] + (f"_{r['part']}" if r["part"] else "")
            if r["name"] == "norm" and r["kind"] == "update":
                key = "update_rms"
            out[r["layer"]].setdefault(key, {})[r["step"]] = r["value"]
    return out


def plot_layers(rows, path: Path, title: str = "") -> None:
    table = layer_table(rows)
    layers = list(table)  # in the order first tracked: the model's block order
    panels = [
        ("weight", "weight RMS"),
        ("gradient", "gradient RMS"),
        ("activation_node", "node activation RMS"),
        ("activation_edge", "edge activation RMS"),
        ("update", "update / weight ratio"),
    ]
    fig = Figure(figsize=(4 * len(panels), 4))
    axes = fig.subplots(1, len(panels))
    for ax, (key, label) in zip(axes, panels):
        for i, layer in enumerate(layers):
            d = table[layer].get(key)
            if not d:
                continue
            steps = sorted(d)
            ax.plot(
                steps,
                [d[s] for s in steps],
                label=layer,
                lw=1.2,
                color=_color(layer, i, len(layers)),
            )
        ax.set(yscale="log", xlabel="optimizer step", title=label)
    if key == "update":
        axes[-1].axhline(1e-3, color="green", ls=":", lw=1)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("run")
    ap.add_argument("--out", default=None, help="folder for the PNGs (default: the run folder)")
    ap.add_argument("--prefix", default="run")
    args = ap.parse_args(argv)
    rows = read_metrics(args.run)
    out = Path(args.out or args.run)
    out.mkdir(parents=True, exist_ok=True)
    plot_curves(rows, out / f"{args.prefix}_curves.png", args.prefix)
    plot_layers(rows, out / f"{args.prefix}_layers.png", args.prefix)
    table = layer_table(rows)
    last = {layer: {k: v[max(v)] for k, v in kinds.items() if v} for layer, kinds in table.items()}
    vs, _, vv = series(rows, "ppl", subset="valid")
    summary = {
        "valid_ppl": dict(zip(vs, vv)),
        "last_layer_values": last,
        "finite": all(math.isfinite(r["value"]) for r in rows),
    }
    json.dump(summary, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
