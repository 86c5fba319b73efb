"""Write weights in the original ProteinMPNN's checkpoint format.

    python -m pyg_mpnn.export runs/finetune/full/checkpoints/best.pt --out finetuned.pt

The file holds ``model_state_dict`` (the original's key names, which are ours), ``num_edges``
(k) and ``noise_level`` (the training backbone noise), what ``protein_mpnn_run.py`` reads:
``--path_to_model_weights`` + ``--model_name``, or ``proteinmpnn``'s ``ProteinMPNN`` with
``load_state_dict``. Any weight spec :func:`pyg_mpnn.nn.weights.load_model` accepts can be
exported (a training checkpoint, ``best.pt``, released weights).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyg_mpnn.nn.weights import export_original, load_model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m pyg_mpnn.export",
        description=__doc__.split("\n")[0],
        epilog="see docs/finetuning.md",
    )
    p.add_argument(
        "weights",
        help="a pyg_mpnn checkpoint (e.g. a run's checkpoints/best.pt), "
        "original:v_48_0xx, soluble:v_48_0xx or ca:v_48_0xx (CA-only: --ca_only in the original)",
    )
    p.add_argument("--out", required=True, help="file to write (.pt)")
    p.add_argument(
        "--noise-level",
        type=float,
        default=None,
        help="noise_level to record (default: the checkpoint's training noise)",
    )
    a = p.parse_args(argv)
    try:
        model = load_model(a.weights)
    except (FileNotFoundError, ValueError, RuntimeError, ModuleNotFoundError) as err:
        print(f"error: cannot load {a.weights}: {err}", file=sys.stderr)
        return 2
    c = model.config
    if c["num_letters"] != 21 or c["vocab"] != 21:
        print(f"error: {a.weights}: the original's format has 21 letters", file=sys.stderr)
        return 2
    if (c["hidden_dim"], c["num_encoder_layers"], c["num_decoder_layers"]) != (128, 3, 3):
        print(
            "note: protein_mpnn_run.py builds hidden 128 with 3+3 layers; this model "
            f"(hidden {c['hidden_dim']}, {c['num_encoder_layers']}+{c['num_decoder_layers']}) "
            "loads in proteinmpnn's ProteinMPNN built with its sizes",
            file=sys.stderr,
        )
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    export_original(model, str(out), a.noise_level)
    n = sum(p.numel() for p in model.parameters())
    print(
        f"wrote {out}: {n:,} parameters, hidden {model.hidden_dim}, "
        f"{model.config['num_encoder_layers']}+{model.config['num_decoder_layers']} layers, "
        f"k={model.k_neighbors}, noise_level "
        f"{a.noise_level if a.noise_level is not None else model.checkpoint_noise_level:g}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
