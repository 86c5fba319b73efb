"""Renderers for fine-tuning (benchmarks/finetune.py): the runs, and every model on a held-out
set with its recovery intervals."""

from __future__ import annotations

from pathlib import Path

from tools.docrender.core import RenderError, load, renderer, table

SETTING_LABELS = {"full": "full fine-tune", "frozen_encoder": "frozen encoder (`encoder_layers`)"}


def _with_ci(s: dict, key: str) -> str:
    lo, hi = s[key + "_ci95"]
    return f"{s[key]:.1f} ({lo:.1f}–{hi:.1f})"


def _label(name: str, model: dict) -> str:
    if name == "base":
        return f"`{model['weights']}` (before)"
    return f"{SETTING_LABELS.get(model['setting'], model['setting'])}, seed {model['seed']}"


@renderer("finetune_runs")
def render_finetune_runs(results: Path, file: str) -> str:
    """Per fine-tune: trainable parameters, steps, residues, minutes, validation perplexity
    along the run."""
    rows = []
    for name, m in load(results, file)["models"].items():
        if name == "base":
            continue
        curve = " → ".join(f"{v['valid_ppl']:.3f}" for v in m["valid"])
        rows.append(
            [
                _label(name, m),
                f"{m['trainable_params']:,}",
                f"{m['steps']:,}",
                f"{m['training_residues']:,}",
                f"{m['minutes']:.1f}",
                m["precision"],
                curve,
            ]
        )
    header = ["setting", "trainable params", "steps", "training residues", "minutes"]
    header += ["precision", "valid ppl, step 0 → end"]
    return table(header, ["---", "---:", "---:", "---:", "---:", "---", "---"], rows)


@renderer("finetune_test")
def render_finetune_test(results: Path, file: str, held_out: str) -> str:
    """Every model on one held-out set (``db5.5_test`` or ``ts50``): perplexity, accuracy,
    mean and median recovery with their 95 % bootstrap intervals over chains."""
    r, rows = load(results, file), []
    for name, m in r["models"].items():
        if held_out not in m:
            raise RenderError(f"{results / file}: {name} has no {held_out!r}")
        s = m[held_out]
        rows.append(
            [
                _label(name, m),
                f"{s['perplexity']:.3f}",
                f"{s['accuracy']:.1f}",
                _with_ci(s, "mean_recovery"),
                _with_ci(s, "median_recovery"),
                f"{s['chains']} × {s['samples_per_chain']}",
            ]
        )
    header = ["weights", "ppl", "acc %", "recovery % mean (95 % CI)", "median (95 % CI)"]
    header.append("chains × samples")
    return table(header, ["---", "---:", "---:", "---:", "---:", "---:"], rows)


@renderer("finetune_value")
def render_finetune_value(results: Path, file: str, model: str, held_out: str, key: str) -> str:
    """One model's value on one held-out set (counts as integers, ``perplexity`` with three
    decimals, anything else with one): names with dots (``db5.5_test``) need this rather than
    ``json``."""
    models = load(results, file)["models"]
    if model not in models or held_out not in models[model]:
        raise RenderError(f"{results / file}: no {held_out!r} result for model {model!r}")
    value = models[model][held_out].get(key)
    if not isinstance(value, (int, float)):
        raise RenderError(f"{results / file}: {model} {held_out} has no number {key!r}")
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.3f}" if key == "perplexity" else f"{value:.1f}"
