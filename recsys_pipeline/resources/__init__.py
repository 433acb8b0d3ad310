"""Dagster resources: thin configurable wrappers around the plain modules."""

from recsys_pipeline.resources.files import InputSource, SteamSource
from recsys_pipeline.resources.services import LLMService, WikipediaAPI
from recsys_pipeline.resources.storage import RecsysStorage

__all__ = ["InputSource", "LLMService", "RecsysStorage", "SteamSource", "WikipediaAPI"]
