"""Environment settings (the fixed RECSYS_* variables) and the compute profiles they select.

Kept free of torch so that loading the Dagster definitions stays fast: whether CUDA is present is
read from the NVIDIA driver's device files, not from torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ProfileName = Literal["cpu", "gpu"]


@dataclass(frozen=True)
class ModelSize:
    """SASRec dimensions (the model family's config names)."""

    variant: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    head_dim: int
    intermediate_size: int


@dataclass(frozen=True)
class Profile:
    """Defaults that differ between a laptop-class CPU and a training GPU.

    Run config overrides any of them; the profile only chooses the starting values.
    """

    name: ProfileName
    max_history_length: int
    model: ModelSize


PROFILES: dict[str, Profile] = {
    # RecBole's SASRec size (64 wide, 2 layers, 2 heads, inner 256): trains in minutes on 2 cores.
    "cpu": Profile(
        name="cpu",
        max_history_length=20,
        model=ModelSize("sasrec", 64, 2, 2, 32, 256),
    ),
    # The original project's size.
    "gpu": Profile(
        name="gpu",
        max_history_length=20,
        model=ModelSize("sasrec", 1024, 5, 8, 64, 4096),
    ),
}


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    raw_csv: Path | None  # set only when RECSYS_RAW_CSV names a file explicitly
    profile: Profile
    offline: bool

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def default_raw_csv(self) -> Path:
        return self.data_dir / "raw" / "sequences.csv"


def cuda_present() -> bool:
    """True when an NVIDIA driver exposes a device (cheap; does not import torch)."""
    return Path("/proc/driver/nvidia/version").exists() and any(Path("/dev").glob("nvidia[0-9]*"))


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the RECSYS_* variables; empty values count as unset."""
    env = os.environ if env is None else env
    data_dir = Path(env.get("RECSYS_DATA_DIR") or "./data").expanduser().resolve()
    raw_csv = env.get("RECSYS_RAW_CSV") or None
    profile_name = (env.get("RECSYS_PROFILE") or ("gpu" if cuda_present() else "cpu")).lower()
    if profile_name not in PROFILES:
        raise ValueError(
            f"RECSYS_PROFILE={profile_name!r} is not a profile; use one of {sorted(PROFILES)}"
        )
    return Settings(
        data_dir=data_dir,
        raw_csv=Path(raw_csv).expanduser().resolve() if raw_csv else None,
        profile=PROFILES[profile_name],
        offline=_flag(env.get("RECSYS_OFFLINE")),
    )
