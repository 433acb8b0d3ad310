"""Dagster resources: thin configurable wrappers around the plain modules."""

from recsys_pipeline.resources.enrichment import LLMService, SteamSource, WikipediaAPI
from recsys_pipeline.resources.input import InputSource
from recsys_pipeline.resources.storage import RecsysStorage

__all__ = ["InputSource", "LLMService", "RecsysStorage", "SteamSource", "WikipediaAPI"]
