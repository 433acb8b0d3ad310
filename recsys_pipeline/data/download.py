"""Resumable HTTP downloads and file digests.

A download streams to a ``.part`` file and resumes with an HTTP Range request after a dropped
connection (tenacity retries the attempts, urllib3 retries 429/5xx answers); the finished file's
sha256 is recorded.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from tqdm import tqdm
from urllib3.util.retry import Retry

USER_AGENT = "recsys_pipeline/0.1 (+https://github.com/; dataset download)"
CHUNK_BYTES = 1 << 20


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
