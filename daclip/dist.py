"""torch.distributed helpers shared by the training, embedding and captioning commands.

Launch multi-process work with ``torchrun --nproc_per_node N -m <module> ...``; every
command also runs as a single process when no torchrun environment is present.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(backend: str | None = None) -> DistInfo:
    """Initialise the process group when launched by torchrun (env:// rendezvous).

    The backend is NCCL when CUDA is available and gloo otherwise, so the same code path is
    exercised on CPU in the tests.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        # Free unreachable DDP wrappers (reference cycles) while the group still exists, and let
        # every rank finish its collectives: otherwise gloo can abort the process at exit.
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def default_device(requested: str | None = None, info: DistInfo | None = None) -> torch.device:
    """The device a command should use: the requested one, else this rank's GPU, else CPU."""
    if requested:
        from .device import check_device

        return torch.device(check_device(requested))
    if torch.cuda.is_available():
        return torch.device("cuda", info.local_rank if info else 0)
    return torch.device("cpu")
