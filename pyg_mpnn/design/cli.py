"""``python -m pyg_mpnn.design``: the command line (see docs/design.md)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from pyg_mpnn.atomic import atomic_write
from pyg_mpnn.cli import command
from pyg_mpnn.design.chains import within_max_length
from pyg_mpnn.design.constraints import Constraints, DesignError
from pyg_mpnn.design.options import check_args, parser
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
from pyg_mpnn.errors import UserError
from pyg_mpnn.io.record import ProteinRecord, ReadError
from pyg_mpnn.io.sources import Tally, iter_source
from pyg_mpnn.nn.weights import load_model


def read_inputs(paths: list[str]) -> list[ProteinRecord]:
    """Every record of every input; a read error, a repeated name or no record is an error."""
    records, seen, tally = [], {}, Tally(paths)
    for path in paths:
        for file, item, result in iter_source(path):
            tally.add(file, result)
            if isinstance(result, ReadError):
                raise DesignError(f"input {result}")
            if result.name in seen:
                raise DesignError(
                    f"two inputs named {result.name!r}: {seen[result.name]} and {item}"
                )
            seen[result.name] = item
            records.append(result)
    if not records:
        raise tally.no_protein()
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
    if a.weights is None:  # an empty --weights stays an error, not the default
        a.weights = "ca:v_48_020" if a.ca_only else "original:v_48_020"
    try:
        model = load_model(a.weights)
    except UserError as err:
        raise DesignError(f"--weights {err}") from None
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
        seqs = [("native", "", data.seq)] + [
            (f"fasta:{i}", h, fasta_sequence(record, h, s, "--fasta"))
            for i, (h, s) in enumerate(fastas, 1)
        ]
        native = None
        for source, header, seq in seqs:
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
            native = native or res
            letters = chain_letters(record, seq)
            texts.append(
                score_header(record.name, source, res, native, a.num_orders)
                + "\n"
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
                    fasta_header=header,
                    score=res.score,
                    global_score=res.global_score,
                    native_score=native.score,
                    native_global_score=native.global_score,
                    per_order=res.per_order.tolist(),
                    seq=letters,
                    nll=nll,
                )
            )
    return dumps_json(entries) if a.json else "".join(texts)


def score_header(name: str, source: str, res, native, num_orders: int) -> str:
    """A score-only FASTA header: ``score`` / ``global_score`` of the scored sequence, and for
    a ``--fasta`` sequence ``native_score`` / ``native_global_score`` of the native one; each
    key once (the --fasta header's own fields stay out: they are in the JSON)."""
    fields = [f">{name}", f"source={source}", f"score={res.score:.4f}"]
    fields.append(f"global_score={res.global_score:.4f}")
    if res is not native:
        fields += [f"native_score={native.score:.4f}"]
        fields += [f"native_global_score={native.global_score:.4f}"]
    return ", ".join(fields + [f"num_orders={num_orders}"])


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


@command
def main(argv=None) -> int:
    a = parser().parse_args(argv)
    job = prepare(a)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.probs:
        result = run_probs(job, a)
    elif a.score_only:
        result = run_scores(job, a)
    else:
        result = run_designs(job, a)
    for path, blob in job.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f, b=blob: f.write(b))
    write(result, a)
    return 0
