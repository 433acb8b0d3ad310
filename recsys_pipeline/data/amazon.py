"""Build the input CSV from the public Amazon Reviews 2018 Video Games 5-core dump.

The builder turns the reviews (JSON lines) and the item metadata (JSON lines) into the original
project's CSV: one row per reviewer, items in ``unixReviewTime`` order (ties by asin), titles from
the metadata; reviewer ids and ASINs stay as the dump has them.
"""

from __future__ import annotations

import csv
import gzip
import html
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from recsys_pipeline.data.download import DownloadError

REVIEWS_URL = "https://jmcauley.ucsd.edu/data/amazon_v2/categoryFilesSmall/Video_Games_5.json.gz"
META_URL = "https://jmcauley.ucsd.edu/data/amazon_v2/metaFiles2/meta_Video_Games.json.gz"


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

    out_csv.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_csv.with_name(out_csv.name + ".tmp")
    interactions = 0
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "history_item_id", "history_item_title"])
        for reviewer, items in per_user.items():
            ordered = sorted(items, key=lambda asin: (items[asin], asin))
            writer.writerow([reviewer, str(ordered), str([titles.get(a, "") for a in ordered])])
            interactions += len(ordered)
    os.replace(tmp, out_csv)
    return BuildStats(
        users=len(per_user),
        items=len(wanted),
        interactions=interactions,
        duplicate_reviews=duplicates,
        items_without_title=sum(1 for asin in wanted if not titles.get(asin)),
    )
