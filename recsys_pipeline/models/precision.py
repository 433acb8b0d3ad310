"""Where models run and in which precision: the one place that decides whether bf16 pays off.

torch is imported inside the functions, so that importing this module (from the enrichment and
ranking code too) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def default_device() -> str:
    """``cuda`` when a CUDA device is usable, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def bf16_is_fast(device: str) -> bool:
    """True where bf16 matmuls beat float32: a CUDA device that supports bf16, or a CPU with bf16
    instructions, AMX tiles (measured on one: MiniLM encoded 2.5x the texts per second, the output
    layer ran 1.4x as fast) or AVX-512 BF16 (measured on an AMD EPYC Zen 5); both in
    docs/results.md.
    CPUs without either (AVX2 only: measured on an AMD EPYC Zen 3) convert bf16 and gain nothing."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("amx_tile") or capabilities.get("avx512_bf16"))


def trainer_bf16(device: str) -> bool:
    """The Trainer's bf16 autocast: on CUDA devices where bf16 is fast. CPUs train in float32
    (only the output layer may run in bf16 there: ``SFTSettings.output_precision``)."""
    return device.startswith("cuda") and bf16_is_fast(device)


def fast_dtype(device: str) -> torch.dtype:
    """bfloat16 where :func:`bf16_is_fast`, else float32."""
    import torch

    return torch.bfloat16 if bf16_is_fast(device) else torch.float32
