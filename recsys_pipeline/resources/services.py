"""External sources of item facts: Wikipedia and an LLM endpoint.

Production defaults point at the real services; tests point them at servers on 127.0.0.1.
The OpenAI key is read from the environment when a client is made, so it never sits in run
config, logs or metadata.
"""

import os
from collections.abc import Callable

import dagster as dg

from recsys_pipeline.enrichment.cache import JsonCache
from recsys_pipeline.enrichment.facts import FactExtractor, LLMSettings
from recsys_pipeline.enrichment.wikipedia import API_URL, WikipediaClient


class WikipediaAPI(dg.ConfigurableResource):
    api_url: str = API_URL
    contact: str | None = None  # RECSYS_CONTACT: goes into the User-Agent, as Wikimedia asks
    offline: bool = False
    timeout_s: float = 30.0
    retries: int = 4
    min_interval_s: float = 0.1  # at most 10 requests a second

    def client(self, cache: JsonCache) -> WikipediaClient:
        return WikipediaClient(
            cache,
            api_url=self.api_url,
            contact=self.contact,
            offline=self.offline,
            timeout_s=self.timeout_s,
            retries=self.retries,
            min_interval_s=self.min_interval_s,
        )


class LLMService(dg.ConfigurableResource):
    base_url: str | None = None  # OPENAI_BASE_URL; None: api.openai.com
    model: str = "gpt-4o-mini"  # RECSYS_LLM_MODEL
    offline: bool = False
    concurrency: int = 16
    timeout_s: float = 30.0
    max_retries: int = 3

    def extractor(self, cache: JsonCache, log_line: Callable[[str], None]) -> FactExtractor:
        settings = LLMSettings(
            model=self.model,
            base_url=self.base_url,
            concurrency=self.concurrency,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
        )
        api_key = os.environ.get("OPENAI_API_KEY") or None
        return FactExtractor(cache, settings, api_key, self.offline, log_line=log_line)
