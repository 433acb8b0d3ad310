from pathlib import Path

import dagster as dg

from recsys_pipeline.data.artifacts import ArtifactStore


class RecsysStorage(dg.ConfigurableResource):
    """Root of inputs and artifacts ($RECSYS_DATA_DIR)."""

    data_dir: str
    lock_timeout_s: float = 3600.0

    @property
    def root(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def raw_dir(self) -> Path:
        return self.root / "raw"

    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.root / "artifacts", lock_timeout_s=self.lock_timeout_s)
