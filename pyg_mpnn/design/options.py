"""The options of ``python -m pyg_mpnn.design`` and their checks: no torch here, so that
``--help`` and usage errors answer at once (:mod:`pyg_mpnn.design.cli` runs the command)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from pyg_mpnn.cli import add_threads_option, add_weights_option, make_parser
from pyg_mpnn.errors import UserError

DESCRIPTION = (
    "Design sequences for protein backbones with ProteinMPNN weights, as the original's "
    "protein_mpnn_run.py does: sample --num-seqs sequences per temperature for the designed "
    "chains (--chains; the others are visible context), with fixed or tied residues, omitted "
    "letters and biases; or score the native sequence and those of a FASTA file "
    "(--score-only); or write per-residue log-probabilities (--probs). Everything is checked "
    "before any computation: a bad input is one error line (exit status 2) and nothing is "
    "written. See docs/design.md."
)
EXAMPLES = [
    "python -m pyg_mpnn.design tests/fixtures/biotite__5zng.pdb --chains A --num-seqs 4",
    "python -m pyg_mpnn.design --fixed A:991-1000 tests/fixtures/biotite__5zng.pdb "
    "--temperature 0.1 --temperature 0.3 --out runs/design/designs.fa",
    "python -m pyg_mpnn.design tests/fixtures/biotite__5zng.pdb --chains A --score-only "
    "--num-orders 4 --weights soluble:v_48_020 --json",
]


def parser() -> argparse.ArgumentParser:
    p = make_parser("python -m pyg_mpnn.design", DESCRIPTION, EXAMPLES)
    p.add_argument(
        "inputs",
        nargs="+",
        help="structure files (PDB/mmCIF/PQR/PDBQT, plain or "
        "gzipped), folders of them, or JSONL (CATH-style or the original's parsed layout)",
    )
    add_weights_option(p, None, "(default: original:v_48_020; ca:v_48_020 with --ca-only)")
    p.add_argument(
        "--ca-only",
        action="store_true",
        help="design from CA atoms alone (the CA-only model; CA weights imply it): a "
        "residue with a CA atom counts",
    )
    _design_options(p)
    _control_options(p)
    _pssm_options(p)
    _sampling_options(p)
    _scoring_options(p)
    _output_options(p)
    return p


def _design_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to design")
    g.add_argument(
        "--chains", help="chains to design, e.g. A,B (default: all); the others stay visible"
    )
    g.add_argument(
        "--fixed",
        action="append",
        default=[],
        metavar="SPEC",
        help="residues kept native, author numbering: A:1-10,15,20A; repeat the option "
        "(or quote several specs, 'A:1-10 B:5') for more chains",
    )
    g.add_argument(
        "--design-only",
        action="append",
        default=[],
        metavar="SPEC",
        help="design only these residues (same syntax); all others stay native",
    )
    g.add_argument("--fixed-jsonl", help="the original's fixed_positions_jsonl file")
    g.add_argument("--tied-jsonl", help="the original's tied_positions_jsonl (with weights)")
    g.add_argument(
        "--homo-oligomer",
        action="store_true",
        help="tie equivalent positions of designed chains with identical sequences",
    )
    g.add_argument(
        "--chains-jsonl",
        help="the original's chain_id_jsonl: per structure [[designed], [fixed]] chains "
        "(chains in neither are left out)",
    )
    g.add_argument(
        "--max-length",
        type=int,
        help="skip structures with more residues than this (the original's --max_length; "
        "default: no limit)",
    )


def _control_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("amino-acid control")
    g.add_argument(
        "--omit",
        default="X",
        help="letters never sampled (default: X; as the "
        "original, a given list replaces it: write CX to omit C and X)",
    )
    g.add_argument("--omit-jsonl", help="the original's per-residue omit_AA_jsonl")
    g.add_argument("--bias", help="global bias added to the logits, e.g. A:-1.0,W:0.5")
    g.add_argument("--bias-jsonl", help='the original\'s bias_AA_jsonl ({"A": -1.0})')
    g.add_argument("--bias-by-res-jsonl", help="the original's per-residue bias_by_res_jsonl")


def _pssm_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("PSSM (the original's options; see docs/design.md)")
    g.add_argument("--pssm-jsonl", help="the original's pssm_jsonl")
    g.add_argument(
        "--pssm-multi",
        type=float,
        help="weight of the PSSM in (0, 1] (1: the PSSM alone); needed by --pssm-bias-flag",
    )
    g.add_argument(
        "--pssm-threshold",
        type=float,
        help="letters with PSSM log-odds not above this are nearly forbidden "
        "(default: 0); with --pssm-log-odds-flag",
    )
    g.add_argument("--pssm-log-odds-flag", action="store_true", help="restrict letters by log-odds")
    g.add_argument("--pssm-bias-flag", action="store_true", help="mix the PSSM's probabilities in")


def _sampling_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--num-seqs", type=int, default=1, help="sequences per temperature")
    g.add_argument(
        "--temperature",
        action="append",
        metavar="T",
        help="sampling temperature; repeat it (or quote several, '0.1 0.3') for more (default: 0.1)",
    )
    g.add_argument("--seed", type=int, default=0, help="seeds one generator per structure")
    g.add_argument(
        "--backbone-noise",
        type=float,
        default=0.0,
        help="std (Angstrom) of Gaussian noise added to the backbone atoms for every "
        "forward pass, as the original's --backbone_noise",
    )
    g.add_argument(
        "--batch-size", type=int, default=32, help="sequences (or orders) per forward pass"
    )


def _scoring_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scoring and probabilities")
    g.add_argument(
        "--score-only",
        action="store_true",
        help="score the native sequence and those of --fasta; no sampling",
    )
    g.add_argument("--fasta", help="sequences to score (chains joined by /)")
    g.add_argument(
        "--num-orders",
        type=int,
        default=1,
        help="random decoding orders averaged by --score-only / --probs conditional",
    )
    g.add_argument(
        "--probs",
        choices=["conditional", "unconditional"],
        help="write per-residue log-probabilities (.npz per structure) to --out",
    )
    g.add_argument(
        "--conditional-probs-only-backbone",
        action="store_true",
        help="with --probs conditional: each residue decoded first, seeing no letter",
    )


def _output_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--out", help="output file (default: stdout); a folder for --probs")
    g.add_argument("--json", action="store_true", help="JSON instead of FASTA")
    g.add_argument(
        "--save-score",
        metavar="FOLDER",
        help="also write each structure's sample scores (NAME.npz, the original's keys)",
    )
    g.add_argument(
        "--save-probs",
        metavar="FOLDER",
        help="also write each structure's sampling probabilities (NAME.npz, the original's keys)",
    )
    g.add_argument(
        "--exact",
        action="store_true",
        help="the original's operation order "
        "throughout (bit-level parity; slower). Default: split layers and the fast "
        "incremental decoder (same function, log-probs within 1e-4)",
    )
    add_threads_option(g)
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def words(values: list[str]) -> list[str]:
    """The values of a repeatable option, each of which may hold several ('A:1-5 B:5')."""
    return [w for v in values for w in v.split()]


def temperatures(values: list[str] | None) -> list[float]:
    out = []
    for text in words([v.replace(",", " ") for v in values or ["0.1"]]):
        try:
            out.append(float(text))
        except ValueError:
            raise UserError(f"--temperature: {text!r} is not a number") from None
    return out


def check_args(a: argparse.Namespace) -> None:
    a.temperature = temperatures(a.temperature)
    a.fixed, a.design_only = words(a.fixed), words(a.design_only)
    for name in ("num_seqs", "batch_size", "num_orders", "threads"):
        if getattr(a, name) is not None and getattr(a, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if not all(0 < t < math.inf for t in a.temperature):
        raise UserError("--temperature must be positive and finite")
    if a.fasta and not a.score_only:
        raise UserError("--fasta is for --score-only")
    if a.score_only and a.probs:
        raise UserError("--score-only and --probs exclude each other")
    if a.probs and not a.out:
        raise UserError("--probs needs --out (a folder for the .npz files)")
    if a.out and a.probs and Path(a.out).exists() and not Path(a.out).is_dir():
        raise UserError(f"--out {a.out} is a file; --probs writes a folder of .npz files")
    if a.out and not a.probs and Path(a.out).is_dir():
        raise UserError(f"--out {a.out} is a folder; give the file to write")
    check_original_options(a)


def check_original_options(a: argparse.Namespace) -> None:
    """Options of the original's that exclude or need others, and their values."""
    if not (a.backbone_noise >= 0 and a.backbone_noise < math.inf):
        raise UserError(f"--backbone-noise must be a finite number >= 0, got {a.backbone_noise}")
    if a.max_length is not None and a.max_length < 1:
        raise UserError(f"--max-length must be at least 1, got {a.max_length}")
    if a.conditional_probs_only_backbone and a.probs != "conditional":
        raise UserError("--conditional-probs-only-backbone needs --probs conditional")
    for opt in ("save_score", "save_probs"):
        folder = getattr(a, opt)
        name = f"--{opt.replace('_', '-')}"
        if folder and (a.score_only or a.probs):
            raise UserError(f"{name} is for designing, not --score-only or --probs")
        if folder and Path(folder).exists() and not Path(folder).is_dir():
            raise UserError(f"{name} {folder}: not a folder")
