"""Build the input CSV from the public Amazon Reviews 2018 Video Games 5-core dump.

Downloads stream to a ``.part`` file and resume with an HTTP Range request after a dropped
connection; the finished file's sha256 is recorded. The builder turns the reviews (JSON lines) and
the item metadata (JSON lines) into the original project's CSV: one row per reviewer, items in
``unixReviewTime`` order (ties by asin), titles from the metadata, ids 1..N by first appearance.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import html
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from tqdm import tqdm
from urllib3.util.retry import Retry

REVIEWS_URL = "https://jmcauley.ucsd.edu/data/amazon_v2/categoryFilesSmall/Video_Games_5.json.gz"
META_URL = "https://jmcauley.ucsd.edu/data/amazon_v2/metaFiles2/meta_Video_Games.json.gz"
USER_AGENT = "recsys_pipeline/0.1 (+https://github.com/; dataset download)"
CHUNK_BYTES = 1 << 20

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    pass


@dataclass(frozen=True)
class Downloaded:
    path: Path
    url: str
    sha256: str
    bytes: int
    resumed: bool  # True when at least one Range request continued a partial file


def http_session(retries: int = 3) -> requests.Session:
    """A session that retries connection errors and 429/5xx answers with back-off."""
    session = requests.Session()
    retry = Retry(
        total=retries,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        respect_retry_after_header=True,
        allowed_methods=frozenset({"GET", "HEAD"}),
    )
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.headers["User-Agent"] = USER_AGENT
    return session


def download(
    url: str,
    dest: Path,
    session: requests.Session | None = None,
    attempts: int = 5,
    timeout_s: float = 60.0,
    progress: bool = True,
    chunk_bytes: int = CHUNK_BYTES,
) -> Downloaded:
    """Fetch ``url`` to ``dest`` unless it is already there; resume partial downloads."""
    dest = Path(dest)
    if dest.is_file():
        return Downloaded(dest, url, sha256_of(dest), dest.stat().st_size, resumed=False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    session = session or http_session()
    resumed = False

    def fetch_once() -> None:
        nonlocal resumed
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with session.get(url, headers=headers, stream=True, timeout=timeout_s) as response:
            if response.status_code == 416 and have:
                return  # the part file already holds everything the server has
            response.raise_for_status()
            if have and response.status_code == 206:
                resumed = True
            else:
                have = 0  # the server ignored the Range header: start over
            total = _expected_size(response, have)
            with (
                part.open("ab" if have else "wb") as out,
                tqdm(
                    total=total,
                    initial=have,
                    unit="B",
                    unit_scale=True,
                    desc=dest.name,
                    disable=not progress,
                    mininterval=2.0,
                ) as bar,
            ):
                for chunk in response.iter_content(chunk_bytes):
                    out.write(chunk)
                    bar.update(len(chunk))
            if total is not None and part.stat().st_size != total:
                raise requests.ConnectionError(
                    f"connection closed at {part.stat().st_size} of {total} bytes"
                )

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.5, max=30),
        retry=retry_if_exception_type(
            (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
        ),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                fetch_once()
    except requests.RequestException as exc:
        raise DownloadError(f"could not download {url}: {exc}") from exc
    os.replace(part, dest)
    return Downloaded(dest, url, sha256_of(dest), dest.stat().st_size, resumed=resumed)


def _expected_size(response: requests.Response, have: int) -> int | None:
    content_range = response.headers.get("Content-Range", "")
    if response.status_code == 206 and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return have + int(length) if length and length.isdigit() else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class BuildStats:
    users: int
    items: int
    interactions: int
    duplicate_reviews: int  # the same reviewer and item more than once: the first is kept
    items_without_title: int


def _json_lines(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DownloadError(
                        f"{path}, line {number}: not a JSON object ({exc})"
                    ) from exc


def build_sequences_csv(reviews_gz: Path, meta_gz: Path, out_csv: Path) -> BuildStats:
    """Write the input CSV (atomically) from the 2018 reviews and metadata files."""
    per_user: dict[str, dict[str, int]] = {}  # reviewer -> asin -> first review time
    duplicates = 0
    for review in _json_lines(reviews_gz):
        try:
            reviewer, asin, when = (
                review["reviewerID"],
                review["asin"],
                int(review["unixReviewTime"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DownloadError(f"{reviews_gz}: a review lacks {exc}") from exc
        items = per_user.setdefault(reviewer, {})
        if asin in items:
            duplicates += 1
            items[asin] = min(items[asin], when)
        else:
            items[asin] = when

    wanted = {asin for items in per_user.values() for asin in items}
    titles: dict[str, str] = {}
    for meta in _json_lines(meta_gz):
        asin = meta.get("asin")
        if asin in wanted and asin not in titles:
            titles[asin] = html.unescape(str(meta.get("title") or "")).strip()

    item_ids: dict[str, int] = {}
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_csv.with_name(out_csv.name + ".tmp")
    interactions = 0
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "history_item_id", "history_item_title"])
        for user_id, items in enumerate(per_user.values()):
            ordered = sorted(items, key=lambda asin: (items[asin], asin))
            ids = [item_ids.setdefault(asin, len(item_ids) + 1) for asin in ordered]
            writer.writerow([user_id, str(ids), str([titles.get(a, "") for a in ordered])])
            interactions += len(ids)
    os.replace(tmp, out_csv)
    return BuildStats(
        users=len(per_user),
        items=len(item_ids),
        interactions=interactions,
        duplicate_reviews=duplicates,
        items_without_title=sum(1 for asin in item_ids if not titles.get(asin)),
    )
