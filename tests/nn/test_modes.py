"""The model's modes: one dataclass, set at construction or by ``set_modes``, read-only
elsewhere."""

import pytest
import torch

from pyg_mpnn.nn import Modes, ProteinMPNN


def _model(**kw) -> ProteinMPNN:
    torch.manual_seed(0)
    return ProteinMPNN(hidden_dim=8, num_encoder_layers=1, num_decoder_layers=1, **kw)


def test_modes_come_from_the_constructor_and_set_modes_restores_them():
    model = _model(modes=Modes(split=False, shape_buckets=4, aggregation="csr"))
    assert (model.shape_buckets, model.aggregation, model.recompute_activations) == (4, "csr", True)
    assert all(layer.split is False for layer in [*model.encoder_layers, *model.decoder_layers])
    old = model.set_modes(recompute_activations=False, split=True)
    assert old == Modes(split=False, shape_buckets=4, aggregation="csr")
    assert not model.recompute_activations and model.decoder_layers[0].split is True
    model.set_modes(old)
    assert model.modes == old and model.encoder_layers[0].split is False


def test_modes_are_written_only_through_set_modes():
    model = _model()
    with pytest.raises(AttributeError):
        model.shape_buckets = 8
    with pytest.raises(ValueError, match="aggregation"):
        model.set_modes(aggregation="sparse")
    assert model.modes == Modes()  # a refused change leaves the modes as they were
