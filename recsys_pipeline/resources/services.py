"""External sources of item facts: the Steam games file, Wikipedia and an LLM endpoint.

Production defaults point at the real services; tests point them at servers on 127.0.0.1.
The OpenAI key is read from the environment when a client is made, so it never sits in run
config, logs or metadata.
"""

import os
from pathlib import Path

import dagster as dg

from recsys_pipeline.enrichment.wikipedia import API_URL


class SteamSource(dg.ConfigurableResource):
    path: str | None = None  # RECSYS_STEAM_CSV; None: $RECSYS_DATA_DIR/raw/steam.csv if present

    def locate(self, raw_dir: Path) -> tuple[Path | None, bool]:
        """(path, explicit): an explicit path must exist; the default may be absent."""
        if self.path:
            return Path(self.path).resolve(), True
        default = raw_dir / "steam.csv"
        return (default if default.is_file() else None), False


class WikipediaAPI(dg.ConfigurableResource):
    api_url: str = API_URL
    contact: str | None = None  # RECSYS_CONTACT: goes into the User-Agent, as Wikimedia asks
    offline: bool = False
    timeout_s: float = 30.0
    retries: int = 4
    min_interval_s: float = 0.1  # at most 10 requests a second


class LLMService(dg.ConfigurableResource):
    base_url: str | None = None  # OPENAI_BASE_URL; None: api.openai.com
    model: str = "gpt-4o-mini"  # RECSYS_LLM_MODEL
    offline: bool = False
    concurrency: int = 16
    timeout_s: float = 30.0
    max_retries: int = 3

    def api_key(self) -> str | None:
        return os.environ.get("OPENAI_API_KEY") or None
