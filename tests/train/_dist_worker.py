"""Worker for tests/train/test_distributed.py, launched by ``torchrun --nproc_per_node 2``.

    _dist_worker.py ddp  DATASET OUT   # the Trainer under DDP; each rank saves what it saw
    _dist_worker.py fsdp DATASET OUT   # FSDP2 vs one process on the same batch, then the Trainer

Each rank writes ``OUT/<mode>_rank<r>.pt`` for the test to compare.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: not on a worker's path
from _train_tiny import TINY_MODEL

from pyg_mpnn.train.config import load_experiment
from pyg_mpnn.train.trainer import Trainer


def _cfg(data: str, *extra: str) -> dict:
    return load_experiment(
        "smoke",
        TINY_MODEL
        + [
            f"data.path={data}",
            "data.max_tokens=300",
            "train.epochs=1",
            "track.aim=false",
            "track.layer_every=0",
            "checkpoint.every_steps=null",
            *extra,
        ],
    )


def run_trainer(data: str, out: Path, mode: str, *extra: str) -> dict:
    cfg = _cfg(data, f"train.distributed={mode}", *extra)
    t = Trainer(cfg, out / f"run_{mode}")
    init = (
        {k: v.detach().clone() for k, v in t.model.state_dict().items()} if mode == "ddp" else None
    )
    seen: list[list[str]] = []
    t.model.register_forward_pre_hook(
        lambda m, args: seen.append((t.epoch, list(args[0].name))) if m.training else None
    )
    t.fit()  # ends with barrier + destroy_process_group
    return {
        "rank": t.rank,
        "world": t.world,
        "step": t.step,
        "seen": seen,
        "init": init,
        "params": {k: v.detach().clone() for k, v in t.model.state_dict().items()}
        if mode == "ddp"
        else None,
    }


def fsdp_vs_single(data: str) -> dict:
    """Shard a model over the ranks, train 3 steps on the same batch everywhere, and compare
    with an unsharded copy trained in this process."""
    from torch_geometric.data import Batch

    from pyg_mpnn.data.dataset import ProteinDataset
    from pyg_mpnn.nn.model import ProteinMPNN
    from pyg_mpnn.train.distributed import full_state_dict, shard

    dist.init_process_group("gloo")
    ds = ProteinDataset(data, split="train")
    batch = Batch.from_data_list([ds[i] for i in range(3)])
    torch.manual_seed(0)
    model = ProteinMPNN(
        hidden_dim=16, num_encoder_layers=2, num_decoder_layers=2, k_neighbors=8, dropout=0.0
    )
    single = copy.deepcopy(model)
    init_sd = copy.deepcopy(model.state_dict())
    shard(model)
    local = sum(p.to_local().numel() for p in model.parameters())
    total = sum(p.numel() for p in single.parameters())
    rank = torch.randn(batch.num_nodes, generator=torch.Generator().manual_seed(1)).argsort()
    for m in (model, single):
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        for _ in range(3):
            opt.zero_grad()
            lp = m(batch, decoding_rank=rank.argsort())
            (-lp.gather(1, batch.seq[:, None])[batch.mask].mean()).backward()
            opt.step()
    full = full_state_dict(model)
    ref = single.state_dict()
    diff = max(float((full[k] - ref[k]).abs().max()) for k in ref)
    moved = max(float((ref[k] - init_sd[k]).abs().max()) for k in ref)
    return {
        "local_params": local,
        "total_params": total,
        "max_diff": diff,
        "moved": moved,
        "keys_equal": sorted(full) == sorted(ref),
    }


def main() -> None:
    mode, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    import os

    rank = int(os.environ["RANK"])
    torch.set_num_threads(1)
    if mode == "ddp":
        res = run_trainer(
            data, out, "ddp", "optim.accumulate=2", "train.max_steps=3", "train.epochs=3"
        )
    else:  # one process group for both parts (re-creating one from the same store can hang)
        res = fsdp_vs_single(data)
        res["trainer"] = run_trainer(data, out, "fsdp", "train.max_steps=2")
        dist.barrier()
        dist.destroy_process_group()
    torch.save(res, out / f"{mode}_rank{rank}.pt")


if __name__ == "__main__":
    main()
