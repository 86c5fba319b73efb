"""Loading the released weights and our checkpoints; export to the original format."""

from __future__ import annotations

import pytest
import torch
from _nn_data import ETE, read

from pyg_mpnn.io.record import to_data
from pyg_mpnn.nn.model import ProteinMPNN
from pyg_mpnn.nn.weights import ORIGINAL_NAMES, export_original, load_model, original_path


@pytest.mark.parametrize("name", ORIGINAL_NAMES)
def test_every_released_checkpoint_loads_strictly(name):
    model = load_model(f"original:{name}")
    ckpt = torch.load(original_path(name), weights_only=False)
    assert model.k_neighbors == ckpt["num_edges"] == 48
    assert model.augment_eps == 0.0 and model.checkpoint_noise_level == ckpt["noise_level"]
    ours = model.state_dict()
    assert set(ours) == set(ckpt["model_state_dict"])
    assert all(torch.equal(ours[k], v) for k, v in ckpt["model_state_dict"].items())


def test_unknown_original_name_is_a_clear_error():
    with pytest.raises(ValueError, match="v_48_020"):
        load_model("original:v_99_999")


def test_round_trip_original_format(tmp_path):
    model = load_model("original:v_48_010")
    path = tmp_path / "exported.pt"
    export_original(model, path)
    raw = torch.load(path, weights_only=False)
    assert raw["num_edges"] == 48 and raw["noise_level"] == pytest.approx(0.1)
    # the reference implementation loads it with strict key matching
    from proteinmpnn.protein_mpnn_utils import ProteinMPNN as Ref

    Ref(21, 128, 128, 128, 3, 3, k_neighbors=48, augment_eps=0.0).load_state_dict(
        raw["model_state_dict"]
    )
    back = load_model(str(path))
    data = to_data(read(ETE))
    rank = model.random_rank(data, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(data, rank), back(data, rank))


@pytest.mark.parametrize("key", ["config", "model_config"])
def test_our_training_checkpoint(tmp_path, key):
    torch.manual_seed(0)
    model = ProteinMPNN(
        hidden_dim=32, num_encoder_layers=2, num_decoder_layers=1, k_neighbors=16, augment_eps=0.02
    )
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), key: model.config, "step": 3}, path)
    back = load_model(str(path))
    assert back.config == dict(model.config, augment_eps=0.0)  # inference default
    data = to_data(read(ETE))
    rank = model.random_rank(data, torch.Generator().manual_seed(0))
    model.eval().augment_eps = 0.0
    with torch.no_grad():
        assert torch.equal(model(data, rank), back(data, rank))
