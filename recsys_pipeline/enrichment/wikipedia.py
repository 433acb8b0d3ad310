"""Lead sections of English Wikipedia articles through the MediaWiki Action API.

``action=query&prop=extracts&exintro&explaintext&redirects``, up to 50 titles per request, with
``maxlag``, a descriptive User-Agent (with a contact address from the environment), retries with
back-off on 429/5xx that honour ``Retry-After`` (urllib3), a minimum interval between requests,
and an on-disk cache: a re-run asks only for titles it has not seen. Offline, only the cache.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from recsys_pipeline.enrichment.cache import JsonCache
from recsys_pipeline.monitoring.progress import Progress

API_URL = "https://en.wikipedia.org/w/api.php"
SUMMARIES_FILE = "summaries.parquet"
BATCH = 50  # the API's limit for extracts of several pages (exlimit=max)
FOUND, MISSING, FAILED, OFFLINE = "found", "missing", "failed", "offline"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Summary:
    status: str  # FOUND / MISSING / FAILED / OFFLINE
    title: str | None = None  # the article's title after redirects
    extract: str | None = None


def user_agent(contact: str | None) -> str:
    who = contact or "set RECSYS_CONTACT to an e-mail or URL"
    return f"recsys_pipeline/0.1 (video-game recommender; {who}) python-requests"


class WikipediaClient:
    def __init__(
        self,
        cache: JsonCache,
        api_url: str = API_URL,
        contact: str | None = None,
        offline: bool = False,
        timeout_s: float = 30.0,
        retries: int = 4,
        min_interval_s: float = 0.1,
        maxlag: int = 5,
        give_up_after: int = 3,
    ) -> None:
        self.cache, self.api_url, self.offline = cache, api_url, offline
        self.timeout_s, self.min_interval_s, self.maxlag = timeout_s, min_interval_s, maxlag
        self.give_up_after = give_up_after  # consecutive failed batches: the API is unreachable
        self.requests_made = 0
        self._last = 0.0
        self._lock = threading.Lock()
        self.session = requests.Session()
        retry = Retry(
            total=retries,
            backoff_factor=0.5,
            status_forcelist=(429, 500, 502, 503, 504),
            respect_retry_after_header=True,
            allowed_methods=frozenset({"GET"}),
        )
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session.headers["User-Agent"] = user_agent(contact)

    def summaries(
        self, titles: Iterable[str], progress_log: Callable[[str], None] | None = None
    ) -> dict[str, Summary]:
        """One Summary per distinct title; cached answers are reused, failures are not cached.
        Progress lines (titles asked of the API) go to ``progress_log``."""
        wanted = list(dict.fromkeys(t for t in titles if t))
        found: dict[str, Summary] = {}
        todo = []
        for title in wanted:
            cached = self.cache.get(self._key(title))
            if cached is not None:
                found[title] = Summary(**cached)
            else:
                todo.append(title)
        if todo and self.offline:
            log.info(f"offline: {len(todo)} Wikipedia titles not in the cache are skipped")
            found.update({t: Summary(OFFLINE) for t in todo})
            return found
        failures = 0
        with Progress(progress_log, "Wikipedia", len(todo), "titles") as progress:
            for start in range(0, len(todo), BATCH):
                batch = todo[start : start + BATCH]
                if failures >= self.give_up_after:
                    log.warning(
                        f"Wikipedia unreachable ({failures} failed requests in a row): the "
                        f"remaining {len(todo) - start} titles are skipped this run"
                    )
                    found.update({t: Summary(FAILED) for t in todo[start:]})
                    break
                try:
                    answers = self._query(batch)
                except requests.RequestException as exc:
                    failures += 1
                    log.warning(f"Wikipedia request for {len(batch)} titles failed: {_reason(exc)}")
                    found.update({t: Summary(FAILED) for t in batch})
                    continue
                finally:  # asked, whether it failed or not
                    progress.update(len(batch))
                failures = 0
                for title in batch:
                    summary = answers.get(title, Summary(MISSING))
                    self.cache.put(self._key(title), summary.__dict__)
                    found[title] = summary
        return found

    def _key(self, title: str) -> str:
        return f"wiki:{self.api_url}:{title}"

    def _query(self, titles: list[str]) -> dict[str, Summary]:
        self._wait_turn()
        response = self.session.get(
            self.api_url,
            params={
                "action": "query",
                "prop": "extracts",
                "exintro": 1,
                "explaintext": 1,
                "exlimit": "max",
                "redirects": 1,
                "format": "json",
                "formatversion": 2,
                "maxlag": self.maxlag,
                "titles": "|".join(titles),
            },
            timeout=self.timeout_s,
        )
        self.requests_made += 1
        response.raise_for_status()
        payload = response.json()
        if "error" in payload:  # e.g. maxlag: the API answers 200 with an error object
            raise requests.RequestException(f"API error: {payload['error'].get('code')}")
        return parse_query(payload, titles)

    def _wait_turn(self) -> None:
        with self._lock:
            pause = self._last + self.min_interval_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self._last = time.monotonic()


def parse_query(payload: dict, titles: list[str]) -> dict[str, Summary]:
    """Map each asked title through normalisation and redirects to its page's extract."""
    query = payload.get("query", {})
    alias: dict[str, str] = {}
    for step in (*query.get("normalized", []), *query.get("redirects", [])):
        alias[step["from"]] = step["to"]
    pages = {page["title"]: page for page in query.get("pages", [])}
    answers = {}
    for title in titles:
        target = title
        for _ in range(3):  # normalised, then redirected
            target = alias.get(target, target)
        page = pages.get(target)
        if page is None or page.get("missing") or page.get("invalid") or not page.get("extract"):
            answers[title] = Summary(MISSING, target)
        else:
            answers[title] = Summary(FOUND, page["title"], page["extract"].strip())
    return answers


def _reason(exc: requests.RequestException) -> str:
    """Why a request failed, without its URL (fifty titles long)."""
    if exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    cause = getattr(exc.args[0], "reason", None) if exc.args else None
    return repr(cause) if cause is not None else type(exc).__name__


def write_summaries(
    folder: Path, item_ids: np.ndarray, queries: list[str], answers: list[Summary | None]
) -> pa.Table:
    """One row per catalog item: the title asked for, how it went, the article and its extract."""
    table = pa.table(
        {
            "item_id": pa.array(item_ids),
            "query": pa.array(queries, pa.string()),
            "status": pa.array([a.status if a else MISSING for a in answers], pa.string()),
            "article": pa.array([a.title if a else None for a in answers], pa.string()),
            "extract": pa.array([a.extract if a else None for a in answers], pa.string()),
        }
    )
    pq.write_table(table, folder / SUMMARIES_FILE)
    return table


def read_extracts(folder: Path) -> list[str | None]:
    """The article extract of each catalog item (None: no article)."""
    return pq.read_table(folder / SUMMARIES_FILE, columns=["extract"]).column("extract").to_pylist()
