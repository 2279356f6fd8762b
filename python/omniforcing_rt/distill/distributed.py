"""Multi-process training: process-group setup, FSDP2 sharding, activation checkpointing, a local launcher.

Processes are started by ``torchrun`` (the usual ``RANK`` / ``WORLD_SIZE`` / ``MASTER_*`` variables) or
by :func:`spawn` (``torch.multiprocessing``, a free port on 127.0.0.1: what the CPU tests and
``distill --nproc N`` use). The backend is NCCL on CUDA and gloo on CPU.

Sharding (:func:`shard_model`) uses FSDP2 ``fully_shard`` with one unit per transformer block, one for
each block's two text cross-attentions, and the root. The text cross-attentions are separate units
because :meth:`AVTransformer.encode_text` (not ``forward``) runs them once per prompt: their
``project_q`` / ``project_kv`` / ``attend`` methods and the root's ``encode_text`` are registered with
``register_fsdp_forward_method`` so FSDP gathers the weights around those calls and reduces their
gradients as for a forward. Nothing global is patched: the registration wraps methods of these module
instances only. Activation checkpointing is the composable ``checkpoint`` on each block (recompute
in backward; parameter names unchanged).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from omniforcing_rt.errors import ConfigError
from omniforcing_rt.model.transformer import AVTransformer

__all__ = ["DistContext", "free_port", "init_distributed", "shard_model", "spawn"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job."""

    rank: int
    """Global rank."""
    world: int
    """Number of processes."""
    device: torch.device
    """Device of this process."""
    owns_group: bool = False
    """Whether :func:`init_distributed` created the process group (and must destroy it)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def mean(self, values: Mapping[str, float]) -> dict[str, float]:
        """Average scalar metrics over processes (keys must agree across ranks)."""
        if not self.active or not values:
            return dict(values)
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
        dist.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t.tolist())}

    def shutdown(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group described by the environment (single process when WORLD_SIZE is unset)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world == 1:
        return DistContext(0, 1, dev)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world)
        owns = True
    return DistContext(dist.get_rank(), dist.get_world_size(), dev, owns)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child(rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    os.environ["LOCAL_RANK"] = str(rank)
    fn(*args)


def spawn(fn: Callable[..., Any], nprocs: int, args: tuple[Any, ...] = ()) -> None:
    """Run ``fn(*args)`` in ``nprocs`` fresh processes forming one process group (torchrun-free)."""
    import torch.multiprocessing as mp

    if nprocs < 1:
        raise ConfigError(problems=[f"nprocs must be >= 1, got {nprocs}"])
    mp.start_processes(_child, args=(nprocs, free_port(), fn, args), nprocs=nprocs, start_method="spawn")


def resolve_parallel(mode: str, ctx: DistContext) -> bool:
    """Whether to shard with FSDP2 for this ``parallel`` setting."""
    if mode == "none" and ctx.active:
        raise ConfigError(problems=[f"train.parallel = 'none' but {ctx.world} processes were started"])
    return mode == "fsdp" or (mode == "auto" and ctx.active)


def apply_activation_checkpointing(model: AVTransformer) -> None:
    """Recompute every transformer block in backward (composable API: names unchanged)."""
    from torch.distributed._composable import checkpoint

    for blk in model.transformer_blocks:
        checkpoint(blk)


def shard_model(model: AVTransformer, ctx: DistContext, *, dtype: torch.dtype = torch.float32) -> nn.Module:
    """FSDP2-shard ``model`` in place over all processes (see module docstring); returns it."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

    mesh = init_device_mesh(ctx.device.type, (ctx.world,))
    mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32) if dtype != torch.float32 else None
    kw: dict[str, Any] = {"mesh": mesh}
    if mp is not None:
        kw["mp_policy"] = mp
    for blk in model.transformer_blocks:
        for text_attn in (blk.attn2, blk.audio_attn2):
            fully_shard(text_attn, **kw)
            for method in ("project_q", "project_kv", "attend"):
                register_fsdp_forward_method(text_attn, method)
        fully_shard(blk, **kw)
    fully_shard(model, **kw)
    register_fsdp_forward_method(model, "encode_text")
    return model


def set_gradient_sync(model: nn.Module, enabled: bool) -> None:
    """Skip (False) or do (True) the gradient reduce-scatter of the next backward (accumulation)."""
    setter = getattr(model, "set_requires_gradient_sync", None)
    if setter is not None:
        setter(enabled)


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a (possibly sharded) parameter or buffer; a collective for DTensors."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def like_param(full: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """``full`` laid out like ``param`` (sharded the same way when ``param`` is a DTensor)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(param, DTensor):
        return distribute_tensor(full.to(param.device), param.device_mesh, param.placements)
    return full.to(param.device)


def prepare_module(model: AVTransformer, ctx: DistContext, *, fsdp: bool, checkpointing: bool,
                   dtype: torch.dtype) -> AVTransformer:  # fmt: skip
    """Move to the device, add activation checkpointing (trained networks) and shard with FSDP2."""
    model.to(ctx.device)
    if checkpointing:
        apply_activation_checkpointing(model)
    if fsdp:
        shard_model(model, ctx, dtype=dtype)
    return model
