"""One process per GPU under ``torchrun`` (DDP), or a single process; the device, its RNG state,
and host values sent to it without waiting for it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ClothesExtractorError


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def start_distributed(device_kind: str) -> Distributed:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; without them this is a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    import torch.distributed as dist

    dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Distributed(rank=dist.get_rank(), world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(requested: str, local_rank: int) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ClothesExtractorError("--device cuda, but PyTorch sees no CUDA GPU here")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def to_device(values: Any, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Host ``values`` (a numpy array, a number or a list of them) as a tensor on ``device``. On a
    GPU, through pinned memory and without waiting: a plain copy from pageable memory waits
    for every kernel queued before it, and a training step holding a few of them (its batch's
    indices, its augmentation's draws, constants of the network and its losses) can queue no
    kernel ahead of the GPU: the GPU waits for Python at each (``tests/test_train.py``, the
    GPU test of a step without host syncs)."""
    tensor = torch.as_tensor(values, dtype=dtype)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)  # (the pinned copy lives until the copy is done)


def rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
