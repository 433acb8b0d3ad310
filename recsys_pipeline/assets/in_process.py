"""The asset graph materialized in-process in a folder of its own: what the experiments, the GPU
check and the tests run when they need the pipeline's own stages rather than a copy of them."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from recsys_pipeline.data.artifacts import ArtifactStore
from recsys_pipeline.definitions import build_definitions, build_resources
from recsys_pipeline.settings import Settings, load_settings


@dataclass(frozen=True)
class Pipeline:
    """The asset graph on one input file, materialized in-process in ``root`` (its data folder
    and its Dagster instance) with ``profile``'s defaults, offline: what ``make run`` builds.
    Both are kept between runs, so the pipeline's own data versions reuse every upstream step
    that a run did not change (the enrichment, the item vectors across seeds)."""

    source: Path  # the input file (RECSYS_RAW_CSV)
    root: Path
    steam: Path | None = None  # the Steam games file (RECSYS_STEAM_CSV), if any
    profile: str = "cpu"

    def settings(self) -> Settings:
        env = {
            "RECSYS_DATA_DIR": str(self.root / "data"),
            "RECSYS_RAW_CSV": str(self.source),
            "RECSYS_OFFLINE": "1",
            "RECSYS_PROFILE": self.profile,
        }
        if self.steam is not None:
            env["RECSYS_STEAM_CSV"] = str(self.steam)
        return load_settings(env)

    @contextlib.contextmanager
    def run(
        self,
        selection: str,
        config: Mapping[str, Mapping] | None = None,
        log_level: str = "INFO",
    ) -> Iterator[Run]:
        """Materializes ``selection`` (its assets and their checks) with ``config`` as each
        asset's run config, and yields what the run materialized, pinned. ``log_level`` INFO
        shows the steps' own lines (epochs, progress) without Dagster's event-by-event debug log.
        A second process waits until the first has read its results: neither reads what the
        other published."""
        settings = self.settings()
        definitions = build_definitions(settings)
        home = self.root / "dagster"
        home.mkdir(parents=True, exist_ok=True)
        if not (home / "dagster.yaml").is_file():
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        run_config = {
            "loggers": {"console": {"config": {"log_level": log_level}}},
            "ops": {key: {"config": dict(values)} for key, values in (config or {}).items()},
        }
        with (self.root / "lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            with (
                dg.DagsterInstance.from_config(str(home)) as instance,
                contextlib.ExitStack() as pins,
            ):
                result = dg.materialize(
                    [*definitions.assets, *definitions.asset_checks],
                    selection=selection,
                    resources=build_resources(settings),
                    instance=instance,
                    run_config=run_config,
                )
                store = ArtifactStore(settings.artifacts_dir)
                folders, reused = {}, []
                for event in result.get_asset_materialization_events():
                    key = event.asset_key.to_user_string()
                    metadata = event.materialization.metadata
                    folders[key] = pins.enter_context(
                        store.pinned(key, metadata["artifact_version"].value)
                    )
                    if metadata["reused"].value:
                        reused.append(key)
                yield Run(folders, sorted(reused), store, pins)


@dataclass(frozen=True)
class Run:
    """One materialization of the graph: each asset's artifact folder at the version the run
    wrote (or reused), pinned while the run is read."""

    folders: dict[str, Path]
    reused: list[str]
    store: ArtifactStore
    pins: contextlib.ExitStack

    def __getitem__(self, key: str) -> Path:
        return self.folders[key]

    def version(self, key: str, version: str) -> Path:
        """Another version of ``key`` (the SFT model a DPO model was compared with), pinned."""
        if self.folders.get(key, Path()).name == version:
            return self.folders[key]
        return self.pins.enter_context(self.store.pinned(key, version))

    def versions(self) -> dict[str, str]:
        return {key: folder.name for key, folder in self.folders.items()}
