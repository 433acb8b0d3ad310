"""One profile text per item, merged from the Steam match and the extracted facts with the
original project's rules: prefer known values, union lists, drop "Unknown" when something is
known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recsys_pipeline.enrichment.facts import ItemFacts

PROFILES_FILE = "profiles.parquet"
KNOWN_FIELDS = ("item_type", "release_year", "genres", "platform", "price", "developers")


def _union(*lists: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for values in lists:
        for value in values or []:
            cleaned = value.strip()
            if cleaned and cleaned.lower() != "unknown":
                seen.setdefault(cleaned.lower(), cleaned)
    return list(seen.values())


def _first_known(*values: object) -> object:
    for value in values:
        if value not in (None, "", "Unknown"):
            return value
    return None


def merge_facts(steam: dict | None, extracted: ItemFacts) -> ItemFacts:
    """Steam's store data first for year, price and developers; lists are unioned."""
    steam = steam or {}
    return ItemFacts(
        release_year=_first_known(steam.get("release_year"), extracted.release_year),
        price=_first_known(steam.get("price"), extracted.price),
        genres=_union(steam.get("genres") or [], extracted.genres),
        developers=_union(steam.get("developers") or [], extracted.developers),
        item_type=_first_known(extracted.item_type, "Game" if steam else None) or "Unknown",
        platform=_first_known(extracted.platform),
    )


def profile_text(title: str, facts: ItemFacts) -> str:
    """ "Item Title: …; Item Type: …; Release Year: …; Genres: …; Platform: …; Price: … USD;
    Developers: …" with Unknown where nothing is known."""
    price = f"{facts.price:.2f} USD" if facts.price is not None else "Unknown"
    parts = [
        ("Item Title", title),
        ("Item Type", facts.item_type or "Unknown"),
        ("Release Year", facts.release_year or "Unknown"),
        ("Genres", ", ".join(facts.genres) or "Unknown"),
        ("Platform", facts.platform or "Unknown"),
        ("Price", price),
        ("Developers", ", ".join(facts.developers) or "Unknown"),
    ]
    return "; ".join(f"{name}: {value}" for name, value in parts)


def known_shares(merged: list[ItemFacts]) -> dict[str, float]:
    """Per fact: the share of items for which something is known."""
    return {
        name: float(np.mean([getattr(f, name) not in (None, [], "Unknown") for f in merged]))
        for name in KNOWN_FIELDS
    }


def write_profiles(folder: Path, item_ids: np.ndarray, profiles: list[str]) -> None:
    pq.write_table(
        pa.table({"item_id": pa.array(item_ids), "profile": pa.array(profiles)}),
        folder / PROFILES_FILE,
    )


def read_profiles(folder: Path) -> list[str]:
    return pq.read_table(folder / PROFILES_FILE).column("profile").to_pylist()
