"""Write weights in the original ProteinMPNN's checkpoint format.

    python -m pyg_mpnn.export runs/finetune/full/checkpoints/best.pt --out finetuned.pt

The file holds ``model_state_dict`` (the original's key names, which are ours), ``num_edges``
(k) and ``noise_level`` (the training backbone noise), what ``protein_mpnn_run.py`` reads:
``--path_to_model_weights`` + ``--model_name``, or ``proteinmpnn``'s ``ProteinMPNN`` with
``load_state_dict``. Any weight spec :func:`pyg_mpnn.nn.weights.load_model` accepts can be
exported (a training checkpoint, ``best.pt``, released weights). The file is written
atomically: a failed or killed export leaves no partial file.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from pyg_mpnn.cli import WEIGHT_SPECS, command, make_parser
from pyg_mpnn.errors import UserError

DESCRIPTION = (
    "Write ProteinMPNN weights (a pyg_mpnn training checkpoint, a run's best.pt, or released "
    "weights) as a checkpoint in the original ProteinMPNN's format: model_state_dict, "
    "num_edges and noise_level, what the original's protein_mpnn_run.py and proteinmpnn's "
    "ProteinMPNN load. The file is written atomically, and not at all on an error. See "
    "docs/finetuning.md."
)
EXAMPLES = [
    "python -m pyg_mpnn.export original:v_48_020 --out runs/export/v_48_020.pt",
    "python -m pyg_mpnn.export soluble:v_48_010 --out runs/export/soluble.pt --noise-level 0.1",
    "python -m pyg_mpnn.train --exp smoke --out runs/smoke/demo && "
    "python -m pyg_mpnn.export runs/smoke/demo/checkpoints/best.pt --out runs/export/smoke.pt",
]


def parser() -> argparse.ArgumentParser:
    p = make_parser("python -m pyg_mpnn.export", DESCRIPTION, EXAMPLES)
    p.add_argument(
        "weights", help=f"{WEIGHT_SPECS} (ca: is what the original loads with --ca_only)"
    )
    p.add_argument("--out", required=True, help="file to write (.pt)")
    p.add_argument(
        "--noise-level",
        type=float,
        default=None,
        help="noise_level to record (default: the checkpoint's training noise)",
    )
    return p


@command
def main(argv=None) -> int:
    a = parser().parse_args(argv)
    out = Path(a.out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the file to write, e.g. {out}/model.pt")
    if a.noise_level is not None and not (math.isfinite(a.noise_level) and a.noise_level >= 0):
        raise UserError(f"--noise-level must be a finite value >= 0, not {a.noise_level:g}")
    # torch loads from here on, after the arguments are read
    from pyg_mpnn.nn.weights import export_original, load_model

    model = load_model(a.weights)
    c = model.config
    if c["num_letters"] != 21 or c["vocab"] != 21:
        raise UserError(f"{a.weights}: the original's format has 21 letters")
    if (c["hidden_dim"], c["num_encoder_layers"], c["num_decoder_layers"]) != (128, 3, 3):
        print(
            "note: protein_mpnn_run.py builds hidden 128 with 3+3 layers; this model "
            f"(hidden {c['hidden_dim']}, {c['num_encoder_layers']}+{c['num_decoder_layers']}) "
            "loads in proteinmpnn's ProteinMPNN built with its sizes",
            file=sys.stderr,
        )
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
