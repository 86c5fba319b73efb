"""Data-parallel and sharded training: DDP under ``torchrun`` and FSDP2 (``fully_shard``).

``train.distributed`` in the config:

* ``auto`` (default): DDP when launched by ``torchrun`` with ``WORLD_SIZE > 1``, else nothing;
* ``ddp``: :class:`~torch.nn.parallel.DistributedDataParallel` (gloo on CPU, nccl on GPU);
* ``fsdp``: FSDP2, every encoder/decoder layer and the root sharded with
  :func:`torch.distributed.fsdp.fully_shard` (parameters, gradients and Adam state split across
  ranks; for models that do not fit one device);
* ``none``: single process.

Every rank reads its own shard of the batches (``TokenBudgetBatchSampler(num_replicas, rank)``,
the same number of steps on every rank); only rank 0 writes tracking data and checkpoints.
Every parameter of :class:`~pyg_mpnn.nn.model.ProteinMPNN` takes part in the loss (the last
encoder layer's edge update feeds the decoder's context), so DDP runs with
``find_unused_parameters=False``. :func:`cleanup` waits at a barrier before
``destroy_process_group``: a rank that leaves first would otherwise leave gloo peers hanging.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from pyg_mpnn.errors import BadValue

MODES = ("auto", "none", "ddp", "fsdp")


def world_from_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the ``torchrun`` environment (0, 1, 0 without)."""
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def resolve_mode(mode: str) -> str:
    if mode not in MODES:
        raise BadValue(f"train.distributed must be one of {MODES}, got {mode!r}")
    if mode == "auto":
        return "ddp" if world_from_env()[1] > 1 or _initialized_world() > 1 else "none"
    return mode


def _initialized_world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def init(mode: str, device: torch.device) -> tuple[str, int, int, bool]:
    """Join the process group the launcher describes. Returns ``(mode, rank, world, owned)``;
    ``owned``: this call created the group (so :func:`cleanup` should destroy it)."""
    mode = resolve_mode(mode)
    if mode == "none":
        return mode, 0, 1, False
    owned = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
        owned = True
    if device.type == "cuda":
        torch.cuda.set_device(world_from_env()[2])
    return mode, dist.get_rank(), dist.get_world_size(), owned


def wrap(model: nn.Module, mode: str, device: torch.device) -> nn.Module:
    """The module the training step calls: ``model`` itself, its DDP wrapper, or ``model``
    sharded in place by FSDP2 (then also returned). Checkpoints keep using ``model``."""
    if mode == "none":
        return model
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = (
            [device.index if device.index is not None else torch.cuda.current_device()]
            if device.type == "cuda"
            else None
        )
        return DDP(model, device_ids=ids, find_unused_parameters=False)
    if mode == "fsdp":
        return shard(model)
    raise ValueError(f"unknown distributed mode {mode!r}")


def shard(model: nn.Module) -> nn.Module:
    """FSDP2: each MessagePassing layer is its own unit (gathered just before it runs, freed
    after), the remaining parameters (features, embeddings, output) belong to the root."""
    from torch.distributed.fsdp import fully_shard

    for layer in [*getattr(model, "encoder_layers", []), *getattr(model, "decoder_layers", [])]:
        fully_shard(layer)
    fully_shard(model)
    return model


def _options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def state_dicts(model: nn.Module, optimizer, mode: str) -> tuple[dict, dict]:
    """Model and optimizer state dicts as one process would have them. For FSDP2 the shards
    are gathered (a collective: every rank must call this; rank 0 gets the full tensors)."""
    if mode != "fsdp":
        return model.state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_state_dict

    return get_state_dict(model, optimizer, options=_options())


def load_state_dicts(
    model: nn.Module, optimizer, model_sd: dict, optim_sd: dict, mode: str
) -> None:
    """Inverse of :func:`state_dicts` (every rank loads the full dicts; FSDP2 keeps its shard)."""
    if mode != "fsdp":
        model.load_state_dict(model_sd)
        optimizer.load_state_dict(optim_sd)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    set_state_dict(
        model,
        optimizer,
        model_state_dict=model_sd,
        optim_state_dict=optim_sd,
        options=StateDictOptions(full_state_dict=True),
    )


def full_state_dict(model: nn.Module) -> dict:
    """A plain (unsharded, CPU) state dict on every rank, also for an FSDP2 model."""
    from torch.distributed.tensor import DTensor

    return {
        k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().cpu()
        for k, v in model.state_dict().items()
    }


def agree(flag: bool, world: int) -> bool:
    """True on every rank if it is true on any rank (e.g. a time limit reached on one)."""
    if world <= 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def all_reduce_sums(values: dict[str, float], world: int) -> dict[str, float]:
    """Element-wise sum of a dict of floats over ranks (validation meters)."""
    if world <= 1:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def cleanup(owned: bool) -> None:
    """Barrier, then ``destroy_process_group`` (only for a group :func:`init` created)."""
    if owned and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
