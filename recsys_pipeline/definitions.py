"""The Dagster code location: ``dagster dev`` (workspace.yaml) and
``dagster asset materialize -m recsys_pipeline.definitions`` both load ``defs`` from here."""

from __future__ import annotations

import dagster as dg

from recsys_pipeline import automation
from recsys_pipeline.assets import ASSET_MODULES
from recsys_pipeline.assets.versions import with_code_versions
from recsys_pipeline.compute import build_executor
from recsys_pipeline.resources import (
    InputSource,
    LLMService,
    RecsysStorage,
    SteamSource,
    WikipediaAPI,
)
from recsys_pipeline.settings import Settings, load_settings


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    return {
        "storage": RecsysStorage(data_dir=str(settings.data_dir)),
        "input_source": InputSource(
            raw_csv=str(settings.raw_csv) if settings.raw_csv else None,
            items_csv=str(settings.items_csv) if settings.items_csv else None,
            offline=settings.offline,
        ),
        "steam_source": SteamSource(path=str(settings.steam_csv) if settings.steam_csv else None),
        "wikipedia": WikipediaAPI(contact=settings.contact, offline=settings.offline),
        "llm": LLMService(
            base_url=settings.llm_base_url, model=settings.llm_model, offline=settings.offline
        ),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    """Every asset and check with ``settings``' profile defaults, the resources the environment
    names, the automation and failure sensors, and the executor."""
    return dg.Definitions.merge(
        *(
            with_code_versions(module.definitions(settings), module.__name__)
            for module in ASSET_MODULES
        ),
        dg.Definitions(
            resources=build_resources(settings),
            jobs=[automation.full_pipeline],
            sensors=[automation.automation_sensor, automation.report_failed_runs],
            executor=build_executor(settings),
        ),
    )


defs = build_definitions(load_settings())
