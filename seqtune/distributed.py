"""torchrun support on PyTorch's own engine: the process group from the environment, DDP or FSDP2,
rank-strided batches, exact gathering of evaluation outputs, sharded checkpoints."""

from __future__ import annotations

import atexit
import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_environment(use_cpu: bool = False) -> torch.device | None:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU); None when not launched so.

    A collective that waits longer than SEQTUNE_DIST_TIMEOUT seconds (default 600) fails instead of
    hanging, so a rank that dies stops the whole job.
    """
    if not launched_by_torchrun():
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and not use_cpu
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        timeout = datetime.timedelta(seconds=float(os.environ.get("SEQTUNE_DIST_TIMEOUT", "600")))
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timeout,
                                device_id=device if use_cuda else None)
        atexit.register(_shutdown)
    return device


def _shutdown() -> None:
    """Leave together: a rank that tears down its connections while another still uses them makes
    gloo abort the other one."""
    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def wrap_model(model: torch.nn.Module, device: torch.device, fsdp: bool = False) -> torch.nn.Module:
    """FSDP2 if asked (each repeated block, then the root: parameters sharded across ranks, in
    place), else DistributedDataParallel when there are several processes, else the model itself."""
    if fsdp:
        if not dist.is_initialized():
            from .errors import SeqtuneError

            raise SeqtuneError("fsdp=True shards the model across processes: launch with torchrun")
        from torch.distributed.fsdp import fully_shard

        for block in _repeated_blocks(model):
            fully_shard(block)
        fully_shard(model)
        return model
    if world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _repeated_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer layers: members of a ModuleList of several modules of one class."""
    blocks = []
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 1 and len({type(m) for m in module}) == 1:
            blocks.extend(module)
    return blocks


def is_sharded(model: torch.nn.Module) -> bool:
    return hasattr(model, "set_requires_gradient_sync")  # an FSDP2 module


@contextmanager
def _fsdp_no_sync(model: torch.nn.Module) -> Iterator[None]:
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def no_sync(model: torch.nn.Module, sync: bool):
    """Skip the gradient all-reduce (DDP) or reduce-scatter (FSDP2) on accumulation micro-steps."""
    if sync:
        return nullcontext()
    if is_sharded(model):
        return _fsdp_no_sync(model)
    return model.no_sync() if hasattr(model, "no_sync") else nullcontext()


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """A sharded model's whole state dict on rank 0's CPU (a collective); None for unsharded models."""
    if not is_sharded(model):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_sharded(model: torch.nn.Module, optimizer: torch.optim.Optimizer, folder: str) -> None:
    """Each rank writes its shards of the model and optimizer (torch.distributed.checkpoint)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=folder)


def load_sharded(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, folder: str) -> None:
    """Read shards back, resharding for this world size if it changed."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_model_state_dict, set_state_dict

    if optimizer is None:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        state = {"model": get_model_state_dict(model)}
        dcp.load(state, checkpoint_id=folder)
        set_model_state_dict(model, state["model"])
        return
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=folder)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def rank_batches(batches: list[list[int]], start: int = 0) -> list[list[int]]:
    """This rank's share of an epoch from batch `start` on: every world-th batch.

    The epoch's batch list (a function of seed, epoch and per-device batch size only) is padded to a
    multiple of the world size with batches from its start, so that no rank idles in the last step;
    one process sees the list unchanged, and any world size resumes at the same batch.
    """
    world, remaining = world_size(), batches[start:]
    if world == 1:
        return remaining
    padded = remaining + batches[: -len(remaining) % world]
    return padded[rank()::world]


def mean_across_ranks(value: torch.Tensor) -> torch.Tensor:
    if world_size() > 1:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= world_size()
    return value


def max_across_ranks(value: torch.Tensor) -> torch.Tensor:
    if world_size() > 1:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value


def gather_to_all(obj: Any) -> list[Any]:
    """Every rank's object, in rank order, on every rank (small things: indices, NumPy arrays)."""
    if world_size() == 1:
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()
