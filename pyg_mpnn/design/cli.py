"""``python -m pyg_mpnn.design``: the command line (see docs/design.md)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from pyg_mpnn.atomic import atomic_write
from pyg_mpnn.design.chains import within_max_length
from pyg_mpnn.design.constraints import Constraints, DesignError
from pyg_mpnn.design.output import (
    chain_letters,
    designed_chains,
    dumps_json,
    fasta_block,
    fasta_sequence,
    json_entry,
    npz_bytes,
    read_fasta,
    sample_probs_npz_bytes,
    scores_npz_bytes,
)
from pyg_mpnn.design.pssm import PssmOptions
from pyg_mpnn.design.sampling import design_graph, sample_designs, score_native, use_split_layers
from pyg_mpnn.design.scoring import (
    conditional_log_probs,
    order_keys,
    score_sequence,
    unconditional_log_probs,
)
from pyg_mpnn.design.spec import DesignSpec
from pyg_mpnn.io.record import ProteinRecord, ReadError
from pyg_mpnn.io.sources import iter_source
from pyg_mpnn.nn.weights import load_model

DESCRIPTION = "Design, score or get per-residue probabilities with ProteinMPNN weights."


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pyg_mpnn.design", description=DESCRIPTION)
    p.add_argument(
        "inputs",
        nargs="+",
        help="structure files (PDB/mmCIF/PQR/PDBQT, plain or "
        "gzipped), folders of them, or JSONL (CATH-style or the original's parsed layout)",
    )
    p.add_argument(
        "--weights",
        help="original:v_48_0xx, soluble:v_48_0xx, ca:v_48_0{02,10,20} (CA-only) or a "
        "checkpoint (default: original:v_48_020; ca:v_48_020 with --ca-only)",
    )
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
        nargs="+",
        default=[],
        metavar="SPEC",
        help="residues kept native, author numbering: A:1-10,15,20A B:5",
    )
    g.add_argument(
        "--design-only",
        nargs="+",
        default=[],
        metavar="SPEC",
        help="design only these residues (same syntax); all others stay native",
    )
    g.add_argument("--fixed-jsonl", help="the original's fixed_positions_jsonl")
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
        help="skip structures with more residues than this (the original's --max_length)",
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
        help="weight of the PSSM in (0, 1] (1: the PSSM alone); with --pssm-bias-flag",
    )
    g.add_argument(
        "--pssm-threshold",
        type=float,
        help="letters with PSSM log-odds not above this are nearly forbidden "
        "(default 0); with --pssm-log-odds-flag",
    )
    g.add_argument("--pssm-log-odds-flag", action="store_true", help="restrict letters by log-odds")
    g.add_argument("--pssm-bias-flag", action="store_true", help="mix the PSSM's probabilities in")


def _sampling_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--num-seqs", type=int, default=1, help="sequences per temperature")
    g.add_argument("--temperature", type=float, nargs="+", default=[0.1])
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--backbone-noise",
        type=float,
        default=0.0,
        help="std (Angstrom) of Gaussian noise added to the backbone atoms for every "
        "forward pass, as the original's --backbone_noise (default: 0)",
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
    g.add_argument("--threads", type=int, default=None)
    g.add_argument("--no-progress", action="store_true")


def check_args(a: argparse.Namespace) -> None:
    for name in ("num_seqs", "batch_size", "num_orders"):
        if getattr(a, name) < 1:
            raise DesignError(f"--{name.replace('_', '-')} must be at least 1")
    if any(t <= 0 for t in a.temperature):
        raise DesignError("--temperature must be positive")
    if a.fasta and not a.score_only:
        raise DesignError("--fasta is for --score-only")
    if a.score_only and a.probs:
        raise DesignError("--score-only and --probs exclude each other")
    if a.probs and not a.out:
        raise DesignError("--probs needs --out (a folder for the .npz files)")


def check_original_options(a: argparse.Namespace) -> None:
    """Options of the original's that exclude or need others, and their values."""
    if not (a.backbone_noise >= 0 and a.backbone_noise < float("inf")):
        raise DesignError(f"--backbone-noise must be a finite number >= 0, got {a.backbone_noise}")
    if a.max_length is not None and a.max_length < 1:
        raise DesignError(f"--max-length must be at least 1, got {a.max_length}")
    if a.conditional_probs_only_backbone and a.probs != "conditional":
        raise DesignError("--conditional-probs-only-backbone needs --probs conditional")
    for opt in ("save_score", "save_probs"):
        folder = getattr(a, opt)
        name = f"--{opt.replace('_', '-')}"
        if folder and (a.score_only or a.probs):
            raise DesignError(f"{name} is for designing, not --score-only or --probs")
        if folder and Path(folder).exists() and not Path(folder).is_dir():
            raise DesignError(f"{name} {folder}: not a folder")


def read_inputs(paths: list[str]) -> list[ProteinRecord]:
    """Every record of every input; a read error or a repeated name is an error."""
    records, seen = [], {}
    for path in paths:
        for _file, item, result in iter_source(path):
            if isinstance(result, ReadError):
                raise DesignError(f"input {result}")
            if result.name in seen:
                raise DesignError(
                    f"two inputs named {result.name!r}: {seen[result.name]} and {item}"
                )
            seen[result.name] = item
            records.append(result)
    return records


@dataclass
class Job:
    records: list[ProteinRecord]
    constraints: list[Constraints]
    model: torch.nn.Module
    model_name: str
    files: dict = field(default_factory=dict)  # path -> bytes: --save-score, --save-probs


def prepare(a: argparse.Namespace) -> Job:
    """Read and check everything before any computation (bad input: nothing is written)."""
    check_args(a)
    check_original_options(a)
    chains = [c.strip() for c in a.chains.split(",") if c.strip()] if a.chains else None
    spec = DesignSpec(
        chains=chains,
        fixed=a.fixed,
        design_only=a.design_only,
        fixed_jsonl=a.fixed_jsonl,
        tied_jsonl=a.tied_jsonl,
        homo_oligomer=a.homo_oligomer,
        omit=a.omit,
        omit_jsonl=a.omit_jsonl,
        bias=a.bias,
        bias_jsonl=a.bias_jsonl,
        bias_by_res_jsonl=a.bias_by_res_jsonl,
        chains_jsonl=a.chains_jsonl,
        pssm=PssmOptions(
            a.pssm_jsonl, a.pssm_multi, a.pssm_threshold, a.pssm_log_odds_flag, a.pssm_bias_flag
        ),
    )
    records = read_inputs(a.inputs)
    model = load_design_model(a)
    for r in records:  # which residues count: CA weights see every residue with a CA atom
        r.backbone = model.backbone
    loaded = spec.load([r.name for r in records])
    records = [loaded.select(r) for r in within_max_length(records, a.max_length)]
    cons = [loaded.constraints(r) for r in records]
    fastas = read_fasta(a.fasta) if a.fasta else []
    for r in records:  # checked now, used later
        for header, text in fastas:
            fasta_sequence(r, header, text, f"--fasta {a.fasta}")
    use_split_layers(model, not a.exact)
    return Job(records, cons, model, a.weights.split(":", 1)[-1])


def load_design_model(a: argparse.Namespace) -> torch.nn.Module:
    """The model of ``--weights`` (its default from ``--ca-only``; sets ``a.weights``)."""
    a.weights = a.weights or ("ca:v_48_020" if a.ca_only else "original:v_48_020")
    try:
        model = load_model(a.weights)
    except (FileNotFoundError, ValueError) as err:
        raise DesignError(f"--weights: {err}") from None
    if a.ca_only and model.backbone != "ca":
        raise DesignError(f"--ca-only: --weights {a.weights} is a full-backbone model")
    return model


def run_designs(job: Job, a) -> str:
    total = len(job.records) * a.num_seqs * len(a.temperature)
    texts, entries = [], []
    with tqdm(total=total, desc="design", unit="seq", disable=a.no_progress or None) as bar:
        for record, cons in zip(job.records, job.constraints):
            gen = torch.Generator().manual_seed(a.seed)
            data = design_graph(record, cons)
            encoded = None if a.backbone_noise > 0 else job.model.encode(data)
            native = score_native(job.model, data, encoded, gen, a.backbone_noise)
            samples = sample_designs(
                job.model,
                data,
                cons,
                a.temperature,
                a.num_seqs,
                a.batch_size,
                gen,
                a.omit,
                encoded,
                bar,
                exact=a.exact,
                noise=a.backbone_noise,
                keep_probs=bool(a.save_probs),
            )
            texts.append(fasta_block(record, native, samples, job.model_name, a.seed))
            if a.save_score:
                job.files[Path(a.save_score) / f"{record.name}.npz"] = scores_npz_bytes(samples)
            if a.save_probs:
                blob = sample_probs_npz_bytes(samples, data, record)
                job.files[Path(a.save_probs) / f"{record.name}.npz"] = blob
            entries.append(json_entry(record, native, samples))
    return dumps_json(entries) if a.json else "".join(texts)


def run_scores(job: Job, a) -> str:
    fastas = read_fasta(a.fasta) if a.fasta else []
    texts, entries = [], []
    for record, cons in tqdm(
        list(zip(job.records, job.constraints)), desc="score", disable=a.no_progress or None
    ):
        gen = torch.Generator().manual_seed(a.seed)
        data = design_graph(record, cons)
        encoded = None if a.backbone_noise > 0 else job.model.encode(data)
        seqs = [("native", data.seq)] + [
            (f"fasta:{i} {h}", fasta_sequence(record, h, s, "--fasta"))
            for i, (h, s) in enumerate(fastas, 1)
        ]
        for source, seq in seqs:
            res = score_sequence(
                job.model,
                data,
                seq,
                order_keys(data, a.num_orders, gen),
                a.batch_size,
                encoded,
                noise=a.backbone_noise,
                generator=gen,
            )
            letters = chain_letters(record, seq)
            texts.append(
                f">{record.name}, source={source}, score={res.score:.4f}, "
                f"global_score={res.global_score:.4f}, num_orders={a.num_orders}\n"
                + "/".join(letters[c] for c in designed_chains(record))
                + "\n"
            )
            nll = {
                c: [round(float(x), 5) for x in res.nll[record.chain_index == k]]
                for k, c in enumerate(record.chain_ids)
            }
            entries.append(
                dict(
                    name=record.name,
                    source=source,
                    score=res.score,
                    global_score=res.global_score,
                    per_order=res.per_order.tolist(),
                    seq=letters,
                    nll=nll,
                )
            )
    return dumps_json(entries) if a.json else "".join(texts)


def run_probs(job: Job, a) -> dict[str, bytes]:
    out = {}
    for record, cons in tqdm(
        list(zip(job.records, job.constraints)), desc="probs", disable=a.no_progress or None
    ):
        gen = torch.Generator().manual_seed(a.seed)
        data = design_graph(record, cons)
        noise = dict(noise=a.backbone_noise, generator=gen)
        if a.probs == "conditional":
            lp = conditional_log_probs(
                job.model,
                data,
                order_keys(data, a.num_orders, gen),
                a.batch_size,
                backbone_only=a.conditional_probs_only_backbone,
                **noise,
            )
        else:
            lp = unconditional_log_probs(job.model, data, **noise)
        out[f"{record.name}.npz"] = npz_bytes(lp, data, record)
    return out


def write(result, a) -> None:
    if isinstance(result, dict):  # --probs: one .npz per structure in the --out folder
        folder = Path(a.out)
        folder.mkdir(parents=True, exist_ok=True)
        for name, blob in result.items():
            atomic_write(folder / name, lambda f, b=blob: f.write(b))
    elif a.out:
        atomic_write(a.out, lambda f: f.write(result.encode()))
    else:
        sys.stdout.write(result)


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        job = prepare(a)
        if a.probs:
            result = run_probs(job, a)
        elif a.score_only:
            result = run_scores(job, a)
        else:
            result = run_designs(job, a)
    except DesignError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path, blob in job.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f, b=blob: f.write(b))
    write(result, a)
    return 0
