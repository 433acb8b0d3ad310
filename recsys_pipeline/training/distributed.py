"""The few facts training needs about a torchrun launch (one process when not launched by it)."""

from __future__ import annotations

import os


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def per_process_batch(batch_size: int) -> int:
    """The global batch stays ``batch_size`` whatever the number of processes."""
    return max(1, batch_size // world_size())


def threads_per_process() -> int:
    """Share the cores between the processes of this machine instead of oversubscribing them."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size()))
    return max(1, (os.cpu_count() or 1) // local)


def ddp_backend(device: str) -> str | None:
    return "gloo" if device == "cpu" and world_size() > 1 else None
