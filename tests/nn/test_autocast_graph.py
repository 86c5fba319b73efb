"""Half-precision autocast must not change the neighbour graph: the kNN search and the distances
behind the edge features stay in fp32 (a known failure of half-precision ProteinMPNN ports is a
neighbour list that changes with the dtype). On ``$PYG_MPNN_TEST_DEVICE`` (default ``cpu``)."""

from __future__ import annotations

import pytest
import torch
from _nn_data import device_under_test
from testdata import fixture_structures

from pyg_mpnn.io.record import to_data
from pyg_mpnn.io.structure import read_structure
from pyg_mpnn.nn.model import ProteinMPNN

DEVICE = device_under_test()


def _records():
    out = []
    for path in fixture_structures():
        try:
            out.append(read_structure(path))
        except Exception:  # a fixture kept for a reader's failure path
            continue
    return [r for r in out if r.num_residues >= 30][:6]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_edge_index_under_autocast_equals_fp32(dtype):
    records = _records()
    assert len(records) >= 3
    torch.manual_seed(0)
    model = ProteinMPNN(k_neighbors=48).eval().to(DEVICE)
    for record in records:
        data = to_data(record).to(DEVICE)
        with torch.no_grad():
            _, h_e32, edges32 = model.encode(data)
            with torch.autocast(DEVICE.type, dtype=dtype):
                _, h_e, edges = model.encode(data)
        assert torch.equal(edges, edges32), record.name
        # the edge features see the same distances: only the layers' own rounding differs
        assert torch.allclose(h_e.float(), h_e32, atol=0.15), record.name


def test_these_structures_would_catch_a_half_precision_graph():
    """The control: with coordinates rounded to bf16, the neighbour lists of these structures
    change, so the test above can fail."""
    model = ProteinMPNN(k_neighbors=48).eval().to(DEVICE)
    changed = 0
    for record in _records():
        data = to_data(record).to(DEVICE)
        rounded = data.clone()
        rounded.coords = rounded.coords.to(torch.bfloat16).float()
        with torch.no_grad():
            changed += not torch.equal(model.encode(rounded)[2], model.encode(data)[2])
    assert changed >= 2
