"""Environment settings (the fixed RECSYS_* variables) and the compute profiles they select.

Kept free of torch so that loading the Dagster definitions stays fast: whether CUDA is present is
read from the NVIDIA driver's device files, not from torch.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from recsys_pipeline.enrichment.text_vectors import EmbeddingSettings
from recsys_pipeline.training.settings import SFTSettings

ProfileName = Literal["cpu", "gpu"]

# The real public data a checkout may have beside it (../shared/data: Amazon games, its interaction
# log, Steam); the tests, benchmarks and experiments read it from here and skip where it is absent.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_SEQUENCES = SHARED_DATA / "amazon-games" / "sequences.csv"
SHARED_STEAM = SHARED_DATA / "steam" / "steam.csv"


@dataclass(frozen=True)
class Profile:
    """Defaults that differ between a laptop-class CPU and a training GPU.

    Run config overrides any of them; the profile only chooses the starting values.
    """

    name: ProfileName
    sft: SFTSettings  # model size, training, and the max history length models read
    embedding: EmbeddingSettings  # its dimensions equal sft.hidden_size

    def __post_init__(self) -> None:
        if self.embedding.dimensions != self.sft.hidden_size:
            raise ValueError(
                f"profile {self.name}: item vectors of {self.embedding.dimensions} dimensions "
                f"for a model {self.sft.hidden_size} wide"
            )


PROFILES: dict[str, Profile] = {
    # RecBole's SASRec size (64 wide, 2 layers, 2 heads, inner 256): trains in minutes on 2 cores.
    "cpu": Profile(
        name="cpu",
        sft=SFTSettings(),
        embedding=EmbeddingSettings(dimensions=64),
    ),
    # The original project's size, in bf16 on one GPU.
    "gpu": Profile(
        name="gpu",
        sft=SFTSettings(
            # sasrec_gate won on validation at the CPU size only; this size is not measured yet
            variant="sasrec_rope",
            hidden_size=1024,
            num_hidden_layers=5,
            num_attention_heads=8,
            head_dim=64,
            intermediate_size=4096,
            hidden_dropout=0.3,
            attention_dropout=0.2,
            stage1_epochs=2,
            stage2_epochs=20,
            learning_rate=1e-3,
            stage1_learning_rate=1e-3,
            batch_size=1024,
            patience=3,
        ),
        embedding=EmbeddingSettings(
            model="Qwen/Qwen3-Embedding-0.6B", dimensions=1024, batch_size=256
        ),
    ),
}


@dataclass(frozen=True)
class K8sSettings:
    """GPU pods for the training steps under RECSYS_EXECUTOR=k8s."""

    gpus: int = 1  # RECSYS_K8S_GPUS
    node_selector: tuple[tuple[str, str], ...] = (("nvidia.com/gpu.present", "true"),)
    tolerations: tuple[tuple[tuple[str, str], ...], ...] = (
        (("key", "nvidia.com/gpu"), ("operator", "Exists"), ("effect", "NoSchedule")),
    )


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    raw_csv: Path | None  # set only when RECSYS_RAW_CSV names a file explicitly
    profile: Profile
    offline: bool
    steam_csv: Path | None = None  # RECSYS_STEAM_CSV
    items_csv: Path | None = None  # RECSYS_ITEMS_CSV: item_id,title beside an interaction log
    contact: str | None = None  # RECSYS_CONTACT, for the Wikipedia User-Agent
    llm_model: str = "gpt-4o-mini"  # RECSYS_LLM_MODEL
    llm_base_url: str | None = None  # OPENAI_BASE_URL
    executor: str = "multiprocess"  # RECSYS_EXECUTOR: multiprocess or k8s
    k8s: K8sSettings = K8sSettings()
    training_cron: str = "0 3 * * 1"  # RECSYS_TRAINING_CRON: when training may re-run (UTC)
    predictions_max_age_days: float = 8.0  # RECSYS_PREDICTIONS_MAX_AGE_DAYS: freshness warning

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"


@dataclass(frozen=True)
class ServingSettings:
    """The online API's process (``python -m recsys_pipeline.serving``)."""

    host: str = "127.0.0.1"  # HOST: only this machine, unless told otherwise
    port: int = 8000  # PORT
    poll_seconds: float = 5.0  # RECSYS_SERVE_POLL_SECONDS: how often to look for a newer index
    # RECSYS_SERVE_THREADS: torch threads of a model pass; one, because the passes and the HTTP
    # handling share the cores
    threads: int = 1
    batch_wait_ms: float = 2.0  # RECSYS_SERVE_BATCH_WAIT_MS: a pass's wait for company under load


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
    steam_csv = env.get("RECSYS_STEAM_CSV") or None
    items_csv = env.get("RECSYS_ITEMS_CSV") or None
    executor = (env.get("RECSYS_EXECUTOR") or "multiprocess").lower()
    if executor not in ("multiprocess", "k8s"):
        raise ValueError(f"RECSYS_EXECUTOR={executor!r}: use 'multiprocess' or 'k8s'")
    return Settings(
        data_dir=data_dir,
        raw_csv=Path(raw_csv).expanduser().resolve() if raw_csv else None,
        profile=PROFILES[profile_name],
        offline=_flag(env.get("RECSYS_OFFLINE")),
        steam_csv=Path(steam_csv).expanduser().resolve() if steam_csv else None,
        items_csv=Path(items_csv).expanduser().resolve() if items_csv else None,
        contact=env.get("RECSYS_CONTACT") or None,
        llm_model=env.get("RECSYS_LLM_MODEL") or "gpt-4o-mini",
        llm_base_url=env.get("OPENAI_BASE_URL") or None,
        executor=executor,
        k8s=_k8s_settings(env),
        training_cron=env.get("RECSYS_TRAINING_CRON") or Settings.training_cron,
        predictions_max_age_days=float(
            env.get("RECSYS_PREDICTIONS_MAX_AGE_DAYS") or Settings.predictions_max_age_days
        ),
    )


def load_serving_settings(env: Mapping[str, str] | None = None) -> ServingSettings:
    """Read HOST, PORT and the RECSYS_SERVE_* variables; empty values count as unset."""
    env = os.environ if env is None else env
    default = ServingSettings()
    port = _number(env, "PORT", int, default.port)
    if not 1 <= port <= 65535:
        raise ValueError(f"PORT={port}: use a TCP port, 1 to 65535")
    poll_seconds = _number(env, "RECSYS_SERVE_POLL_SECONDS", float, default.poll_seconds)
    if not (math.isfinite(poll_seconds) and poll_seconds > 0):
        raise ValueError(f"RECSYS_SERVE_POLL_SECONDS={poll_seconds}: use a number of seconds > 0")
    threads = _number(env, "RECSYS_SERVE_THREADS", int, default.threads)
    if threads < 1:
        raise ValueError(f"RECSYS_SERVE_THREADS={threads}: use 1 or more")
    batch_wait_ms = _number(env, "RECSYS_SERVE_BATCH_WAIT_MS", float, default.batch_wait_ms)
    if not (math.isfinite(batch_wait_ms) and batch_wait_ms >= 0):
        raise ValueError(f"RECSYS_SERVE_BATCH_WAIT_MS={batch_wait_ms}: use a number of ms >= 0")
    return ServingSettings(
        host=env.get("HOST") or default.host,
        port=port,
        poll_seconds=poll_seconds,
        threads=threads,
        batch_wait_ms=batch_wait_ms,
    )


def _number(env: Mapping[str, str], name: str, kind: type[int | float], default: float) -> float:
    """``env[name]`` read as ``kind``, or ``default`` when it is unset or empty."""
    value = env.get(name)
    if not value:
        return default
    try:
        return kind(value)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"{name}={value!r} is not {what}") from None


def _k8s_settings(env: Mapping[str, str]) -> K8sSettings:
    """RECSYS_K8S_GPUS, RECSYS_K8S_NODE_SELECTOR (JSON object), RECSYS_K8S_TOLERATIONS (JSON list)."""
    default = K8sSettings()
    selector = (
        json.loads(env["RECSYS_K8S_NODE_SELECTOR"]) if env.get("RECSYS_K8S_NODE_SELECTOR") else None
    )
    tolerations = (
        json.loads(env["RECSYS_K8S_TOLERATIONS"]) if env.get("RECSYS_K8S_TOLERATIONS") else None
    )
    return K8sSettings(
        gpus=int(env.get("RECSYS_K8S_GPUS") or default.gpus),
        node_selector=tuple(selector.items()) if selector is not None else default.node_selector,
        tolerations=tuple(tuple(t.items()) for t in tolerations)
        if tolerations is not None
        else default.tolerations,
    )
