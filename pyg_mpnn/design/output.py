"""Sequences in and out: the original's FASTA layout, JSON, ``.npz`` probabilities.

FASTA as ``protein_mpnn_run.py`` writes it: per structure, first the native::

    >NAME, score=1.2345, global_score=1.2345, fixed_chains=['B'], designed_chains=['A'], model_name=v_48_020, seed=0
    NATIVE/SEQUENCE

then one record per sample::

    >T=0.1, sample=1, score=0.9876, global_score=1.0123, seq_recovery=0.4567
    SAMPLED/SEQUENCE

Sequences hold the designed chains only, in alphabetical chain order, joined by ``/`` (fixed
residues inside them keep their native letter). ``--json`` writes every chain instead.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch

from pyg_mpnn.alphabet import ALPHABET, decode
from pyg_mpnn.design.constraints import DesignError, letters
from pyg_mpnn.design.sampling import Sample
from pyg_mpnn.io.record import ProteinRecord


def designed_chains(record: ProteinRecord) -> list[str]:
    return sorted(c for c, d in zip(record.chain_ids, record.designed) if d)


def fixed_chains(record: ProteinRecord) -> list[str]:
    return sorted(c for c, d in zip(record.chain_ids, record.designed) if not d)


def chain_letters(record: ProteinRecord, seq: torch.Tensor) -> dict[str, str]:
    text = "".join(decode(seq.tolist()))
    return {
        c: "".join(text[i] for i in np.nonzero(record.chain_index == k)[0])
        for k, c in enumerate(record.chain_ids)
    }


def _f4(x: float) -> str:
    return f"{x:.4f}"


def fasta_block(
    record: ProteinRecord, native: Sample, samples: list[Sample], model_name: str, seed: int
) -> str:
    """The original's FASTA records for one structure."""
    chains = designed_chains(record)
    join = lambda seq: "/".join(chain_letters(record, seq)[c] for c in chains)
    lines = [
        f">{record.name}, score={_f4(native.score)}, global_score="
        f"{_f4(native.global_score)}, fixed_chains={fixed_chains(record)}, "
        f"designed_chains={chains}, model_name={model_name}, seed={seed}",
        join(native.seq),
    ]
    for s in samples:
        lines += [
            f">T={s.temperature}, sample={s.number}, score={_f4(s.score)}, "
            f"global_score={_f4(s.global_score)}, seq_recovery={_f4(s.recovery)}",
            join(s.seq),
        ]
    return "\n".join(lines) + "\n"


def json_entry(record: ProteinRecord, native: Sample, samples: list[Sample]) -> dict:
    """Everything about one structure's designs, every chain spelt out."""
    item = lambda s: dict(
        score=s.score, global_score=s.global_score, seq=chain_letters(record, s.seq)
    )
    return dict(
        name=record.name,
        designed_chains=designed_chains(record),
        fixed_chains=fixed_chains(record),
        native=item(native),
        samples=[
            dict(T=s.temperature, sample=s.number, seq_recovery=s.recovery, **item(s))
            for s in samples
        ],
    )


def read_fasta(path: str) -> list[tuple[str, str]]:
    """``[(header, sequence)]`` of a FASTA file (sequence lines joined)."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise DesignError(f"--fasta: cannot read {path}: {err.strerror or err}") from None
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(">"):
            out.append([line[1:].strip(), ""])
        elif line:
            if not out:
                raise DesignError(f"--fasta {path}: sequence before the first '>' header")
            out[-1][1] += line
    if not out:
        raise DesignError(f"--fasta {path}: no FASTA record")
    return [(h, s) for h, s in out]


def fasta_sequence(record: ProteinRecord, header: str, text: str, where: str) -> torch.Tensor:
    """A whole-structure sequence ``[N]`` from a FASTA sequence: ``/``-separated parts for
    the designed chains (alphabetical, as the output) or for every chain (file order); chains
    not given keep their native letters."""
    parts = text.split("/")
    designed = designed_chains(record)
    if len(parts) == len(designed):
        chains = designed
    elif len(parts) == len(record.chain_ids):
        chains = list(record.chain_ids)
    else:
        raise DesignError(
            f"{where}: record {header!r} has {len(parts)} chain(s); {record.name}"
            f" has {len(designed)} designed ({', '.join(designed)}) and "
            f"{len(record.chain_ids)} in all"
        )
    seq = torch.tensor([ALPHABET.index(a) for a in record.seq], dtype=torch.long)
    for c, part in zip(chains, parts):
        idx = np.nonzero(record.chain_index == record.chain_ids.index(c))[0]
        if len(part) != len(idx):
            raise DesignError(
                f"{where}: record {header!r} chain {c} has {len(part)} letters; "
                f"{record.name} chain {c} has {len(idx)} residues"
            )
        seq[torch.from_numpy(idx)] = torch.tensor(letters(part, f"{where} record {header!r}"))
    return seq


def npz_bytes(log_p: torch.Tensor, data, record: ProteinRecord) -> bytes:
    """The original's probabilities ``.npz`` (``log_p``, ``S``, ``mask``, ``design_mask``)
    plus ``chain_ids`` and ``residue_ids``."""
    buf = io.BytesIO()
    rid = record.residue_ids or [str(i + 1) for i in range(record.num_residues)]
    np.savez(
        buf,
        log_p=log_p.numpy(),
        S=data.seq.numpy(),
        mask=data.mask.numpy(),
        design_mask=(data.design_mask & data.mask).numpy(),
        chain_ids=np.array([record.chain_ids[k] for k in record.chain_index]),
        residue_ids=np.array(rid),
        alphabet=np.array(list(ALPHABET)),
    )
    return buf.getvalue()


def dumps_json(obj) -> str:
    return json.dumps(obj, indent=1) + "\n"


def scores_npz_bytes(samples: list[Sample]) -> bytes:
    """The original's ``--save_score`` file: ``score`` and ``global_score`` ``[S]`` float32,
    one per sample in FASTA order."""
    buf = io.BytesIO()
    np.savez(
        buf,
        score=np.array([s.score for s in samples], np.float32),
        global_score=np.array([s.global_score for s in samples], np.float32),
    )
    return buf.getvalue()


def sample_probs_npz_bytes(samples: list[Sample], data, record: ProteinRecord) -> bytes:
    """The original's ``--save_probs`` file, one row per sample in FASTA order: ``probs``
    ``[S, N, 21]`` (what each designed residue was drawn from; zeros elsewhere), ``log_probs``
    ``[S, N, 21]`` (teacher-forced on the sample in its decoding order), ``S`` ``[S, N]``
    int32, ``mask`` ``[S, N]`` (designed residues with a backbone), ``chain_order`` (chain
    ids in residue order); plus ``chain_ids``, ``residue_ids`` and ``alphabet``. Residues are
    in file order."""
    buf = io.BytesIO()
    design = (data.design_mask & data.mask).numpy().astype(np.float32)
    rid = record.residue_ids or [str(i + 1) for i in range(record.num_residues)]
    np.savez(
        buf,
        probs=torch.stack([s.probs for s in samples]).numpy().astype(np.float32),
        log_probs=torch.stack([s.log_probs for s in samples]).numpy().astype(np.float32),
        S=torch.stack([s.seq for s in samples]).numpy().astype(np.int32),
        mask=np.tile(design, (len(samples), 1)),
        chain_order=np.array(list(record.chain_ids)),
        chain_ids=np.array([record.chain_ids[k] for k in record.chain_index]),
        residue_ids=np.array(rid),
        alphabet=np.array(list(ALPHABET)),
    )
    return buf.getvalue()
