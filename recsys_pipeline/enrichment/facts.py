"""Structured facts about an item: from an LLM reading its Wikipedia summary (any
OpenAI-compatible endpoint; structured output through the openai client's typed parsing, which
sends ``ItemFacts`` as a strict JSON schema and validates the answer with it), or from rules when
there is no key, no network or no answer.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field, ValidationError

from recsys_pipeline.enrichment.cache import JsonCache, cache_key
from recsys_pipeline.enrichment.titles import platform_from_title
from recsys_pipeline.monitoring.progress import Progress

log = logging.getLogger(__name__)

PROMPT_VERSION = "facts-v1"
FACTS_FILE = "facts.parquet"
SYSTEM_PROMPT = (
    "You extract facts about one video-game product from its title and the lead section of a "
    "Wikipedia article that may or may not be about it. Answer with JSON that follows the "
    'schema. Use null, an empty list or "Unknown" for anything the text does not state; '
    "never guess."
)
MAX_SUMMARY_CHARS = 2000
_YEAR = re.compile(r"\b(19[7-9]\d|20[0-4]\d)\b")
_HARDWARE = re.compile(
    r"\b(controller|console|headset|cable|adapter|adaptor|charger|charging|battery|memory card|"
    r"case|stand|skin|keyboard|mouse|gamepad|joystick|wheel|remote|sensor|stylus|dock|hdd|"
    r"hard drive|power supply|ac adapter|screen protector|bundle system|system|faceplate)\b",
    re.IGNORECASE,
)

# status of each item's facts
LLM, RULES, REFUSED, INVALID = "llm", "rules", "refused", "invalid"


class ItemFacts(BaseModel):
    release_year: int | None = Field(default=None, ge=1950, le=2100)
    price: float | None = Field(default=None, ge=0)
    genres: list[str] = Field(default_factory=list)
    developers: list[str] = Field(default_factory=list)
    item_type: Literal["Game", "Hardware", "Unknown"] = "Unknown"
    platform: str | None = None


def rule_based_facts(title: str, summary: str | None, steam: dict | None) -> ItemFacts:
    """Year from the text (or Steam), platform from the title suffix, genres/developers/price
    from the Steam match, item type from hardware words in the title."""
    steam = steam or {}
    year = steam.get("release_year")
    if year is None and summary:
        match = _YEAR.search(summary)
        year = int(match.group(1)) if match else None
    return ItemFacts(
        release_year=year,
        price=steam.get("price"),
        genres=list(steam.get("genres") or []),
        developers=list(steam.get("developers") or []),
        item_type="Hardware" if _HARDWARE.search(title or "") else "Game",
        platform=platform_from_title(title),
    )


@dataclass
class ExtractionStats:
    status: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    cache_hits: int = 0
    fallback_reason: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, status: str, **add: int) -> None:
        """One item with ``status``; ``add`` increments other counters (tokens, requests...)."""
        with self._lock:
            self.status[status] = self.status.get(status, 0) + 1
            for name, value in add.items():
                setattr(self, name, getattr(self, name) + value)

    def add(self, **add: int) -> None:
        with self._lock:
            for name, value in add.items():
                setattr(self, name, getattr(self, name) + value)


@dataclass(frozen=True)
class LLMSettings:
    model: str = "gpt-4o-mini"
    base_url: str | None = None  # None: the openai client's default (api.openai.com)
    concurrency: int = 16
    timeout_s: float = 30.0
    max_retries: int = 3  # the client's own retries on 429/5xx/connection errors
    invalid_retries: int = 1  # extra asks when the answer is not valid JSON for the schema
    unreachable_after: int = 3  # consecutive connection failures before switching to rules
    price_in_per_mtok: float = 0.15  # USD, for the cost estimate
    price_out_per_mtok: float = 0.60


class FactExtractor:
    """LLM extraction with a cache keyed by model + prompt + input, bounded concurrency and a
    rule-based fallback. ``api_key`` is only handed to the client, never logged or stored."""

    def __init__(
        self,
        cache: JsonCache,
        settings: LLMSettings,
        api_key: str | None,
        offline: bool,
        log_line: Callable[[str], None] = log.info,
    ) -> None:
        self.cache, self.settings, self.log_line = cache, settings, log_line
        self.stats = ExtractionStats()
        self._client = None
        reason = None
        if offline:
            reason = "RECSYS_OFFLINE=1"
        elif not api_key:
            reason = "no OPENAI_API_KEY"
        if reason is None:
            from openai import OpenAI

            self._client = OpenAI(
                api_key=api_key,
                base_url=settings.base_url,
                timeout=settings.timeout_s,
                max_retries=settings.max_retries,
            )
        self._fallback(reason)
        self._failures = 0

    def _fallback(self, reason: str | None) -> None:
        if reason and self.stats.fallback_reason is None:
            self.stats.fallback_reason = reason
            self.log_line(f"LLM fact extraction off ({reason}): using the rule-based extractor")

    def extract(
        self,
        items: list[tuple[str, str | None, dict | None]],
        progress_log: Callable[[str], None] | None = None,
    ) -> list[tuple[ItemFacts, str]]:
        """(facts, status) per (title, summary, steam facts); progress lines go to
        ``progress_log``."""
        with Progress(progress_log, "fact extraction", len(items), "items") as progress:

            def one(item: tuple[str, str | None, dict | None]) -> tuple[ItemFacts, str]:
                answer = self._one(*item)
                progress.update()
                return answer

            with ThreadPoolExecutor(max_workers=max(1, self.settings.concurrency)) as pool:
                return list(pool.map(one, items))

    def _one(self, title: str, summary: str | None, steam: dict | None) -> tuple[ItemFacts, str]:
        if not summary or self._client is None or self.stats.fallback_reason is not None:
            self.stats.count(RULES)
            return rule_based_facts(title, summary, steam), RULES
        user = f"Title: {title}\nWikipedia: {summary[:MAX_SUMMARY_CHARS]}"
        key = cache_key(self.settings.model, PROMPT_VERSION, SYSTEM_PROMPT, user)
        cached = self.cache.get(key)
        if cached is not None:
            self.stats.count(cached["status"], cache_hits=1)
            return ItemFacts(**cached["facts"]), cached["status"]
        try:
            facts, status = self._ask(user)
        except Exception as exc:  # any transport or server error after the client's retries
            if _is_connection_error(exc):
                self._failures += 1
                if self._failures >= self.settings.unreachable_after:
                    self._fallback(f"endpoint unreachable ({type(exc).__name__})")
            self.stats.count(RULES)
            return rule_based_facts(title, summary, steam), RULES
        self._failures = 0
        self.cache.put(key, {"facts": facts.model_dump(), "status": status})
        self.stats.count(status)
        return facts, status

    def _ask(self, user: str) -> tuple[ItemFacts, str]:
        from openai import ContentFilterFinishReasonError, LengthFinishReasonError

        for _ in range(1 + self.settings.invalid_retries):
            # The raw response: its usage is counted before the client parses the answer, since
            # an answer that is not ItemFacts raises there and is paid for all the same.
            raw = self._client.chat.completions.with_raw_response.parse(
                model=self.settings.model,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": user},
                ],
                response_format=ItemFacts,
            )
            usage = raw.http_response.json().get("usage") or {}
            self.stats.add(
                requests=1,
                prompt_tokens=usage.get("prompt_tokens") or 0,
                completion_tokens=usage.get("completion_tokens") or 0,
            )
            try:
                message = raw.parse().choices[0].message
            except ContentFilterFinishReasonError:  # the endpoint's filter declined to answer
                return ItemFacts(), REFUSED
            except (ValidationError, LengthFinishReasonError):  # not ItemFacts, or cut short
                continue
            if message.refusal:
                return ItemFacts(), REFUSED
            if message.parsed is not None:  # None: an answer without content
                return message.parsed, LLM
        return ItemFacts(), INVALID

    @property
    def estimated_cost_usd(self) -> float:
        s = self.settings
        return (
            self.stats.prompt_tokens * s.price_in_per_mtok
            + self.stats.completion_tokens * s.price_out_per_mtok
        ) / 1e6


def _is_connection_error(exc: Exception) -> bool:
    from openai import APIConnectionError, APITimeoutError

    return isinstance(exc, APIConnectionError | APITimeoutError)


def write_facts(folder: Path, item_ids: np.ndarray, results: list[tuple[ItemFacts, str]]) -> None:
    """One row per catalog item: its facts and how they were found (llm, rules, ...)."""
    table = pa.Table.from_pylist(
        [
            {"item_id": i, "status": status, **facts.model_dump()}
            for i, (facts, status) in zip(item_ids.tolist(), results, strict=True)
        ]
    )
    pq.write_table(table, folder / FACTS_FILE)


def read_facts(folder: Path) -> list[ItemFacts]:
    names = set(ItemFacts.model_fields)
    return [
        ItemFacts(**{k: v for k, v in row.items() if k in names})
        for row in pq.read_table(folder / FACTS_FILE).to_pylist()
    ]
