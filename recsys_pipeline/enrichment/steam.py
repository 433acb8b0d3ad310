"""Steam store games: read either known file format and match catalog items to games.

Formats, detected from the file:
- the Kaggle "Steam Store Games" CSV (``appid,name,release_date,developer,publisher,platforms,
  genres,price,...``, lists separated by ``;``);
- the FronkonGames steam-games-dataset ``games.json`` (an object keyed by app id, with
  ``name``, ``release_date``, ``price``, ``developers``, ``genres``, ``short_description``, ...).

Matching: an exact match of normalised titles first; otherwise the nearest Steam name by
cosine similarity of title embeddings (faiss), accepted above a threshold.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from recsys_pipeline.enrichment.text_vectors import BUNDLED_MODEL, CPU_ENCODE_BATCH
from recsys_pipeline.enrichment.titles import normalize_title, strip_platform

COLUMNS = ["appid", "name", "release_year", "price", "developers", "genres", "description"]
MATCHES_FILE = "steam_matches.parquet"
_YEAR = re.compile(r"(19|20)\d\d")


class SteamFileError(ValueError):
    pass


class SteamMatchSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # chosen on a hand-labelled sample (docs/enrichment.md: "Steam matching")
    threshold: float = Field(
        0.88, ge=0.0, le=1.0, description="title-embedding cosine above which a match is taken"
    )
    model: str = Field(BUNDLED_MODEL, description="sentence-transformers model for the titles")
    batch_size: int = Field(CPU_ENCODE_BATCH, ge=1, description="titles per encoder batch")


@dataclass(frozen=True)
class SteamGames:
    games: pd.DataFrame  # COLUMNS; developers/genres are lists
    format: str  # "kaggle-csv" or "fronkon-json"
    broken_rows: int


def _year(text: object) -> int | None:
    match = _YEAR.search(str(text or ""))
    return int(match.group(0)) if match else None


def _price(text: object) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def load_steam_games(path: Path) -> SteamGames:
    """Read a Steam games file; broken rows are skipped and counted."""
    path = Path(path)
    if not path.is_file():
        raise SteamFileError(
            f"{path}: Steam games file not found; set RECSYS_STEAM_CSV to a Kaggle steam.csv or a "
            "FronkonGames games.json"
        )
    with path.open("rb") as handle:
        head = handle.read(1024).lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"{"):
        return _load_fronkon(path)
    return _load_kaggle_csv(path)


def _load_kaggle_csv(path: Path) -> SteamGames:
    rows, broken = [], 0
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"appid", "name"} - set(reader.fieldnames or [])
        if missing:
            raise SteamFileError(f"{path}, line 1: missing column(s) {sorted(missing)}")
        for row in reader:
            try:
                appid = int(row["appid"])
                name = (row["name"] or "").strip()
                if not name:
                    raise ValueError("empty name")
            except (TypeError, ValueError):
                broken += 1
                continue
            rows.append(
                (
                    appid,
                    name,
                    _year(row.get("release_date")),
                    _price(row.get("price")),
                    [d for d in (row.get("developer") or "").split(";") if d],
                    [g for g in (row.get("genres") or "").split(";") if g],
                    None,
                )
            )
    return SteamGames(pd.DataFrame(rows, columns=COLUMNS), "kaggle-csv", broken)


def _load_fronkon(path: Path) -> SteamGames:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as exc:
        raise SteamFileError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise SteamFileError(f"{path}: expected an object keyed by app id")
    rows, broken = [], 0
    for key, game in data.items():
        try:
            appid = int(key)
            name = str(game["name"]).strip()
            if not name:
                raise ValueError("empty name")
        except (TypeError, ValueError, KeyError):
            broken += 1
            continue
        rows.append(
            (
                appid,
                name,
                _year(game.get("release_date")),
                _price(game.get("price")),
                list(game.get("developers") or []),
                list(game.get("genres") or []),
                (game.get("short_description") or game.get("about_the_game") or None),
            )
        )
    return SteamGames(pd.DataFrame(rows, columns=COLUMNS), "fronkon-json", broken)


@dataclass(frozen=True)
class Matches:
    """Per catalog item: the matched game row (-1: none), similarity and how it matched."""

    game_row: np.ndarray
    score: np.ndarray
    kind: np.ndarray  # "exact", "embedding" or "none"


def match_items(
    titles: list[str],
    games: pd.DataFrame,
    threshold: float,
    encode: object,
) -> Matches:
    """``encode(texts) -> unit vectors``; exact normalised matches score 1.0."""
    from recsys_pipeline.ranking.retrieval import build_index, search

    # Exact matches: the same words with edition words kept, else with them dropped. Among games
    # that share a key, one whose plain name is the key wins ("Tomb Raider" over "Tomb Raider:
    # Anniversary Edition" for "Tomb Raider: Definitive Edition").
    plain: dict[str, int] = {}
    loose: dict[str, tuple[bool, int]] = {}  # key -> (the game's plain name is the key, row)
    for row, name in enumerate(games["name"].tolist()):
        kept, dropped = normalize_title(name, drop_editions=False), normalize_title(name)
        plain.setdefault(kept, row)
        current = loose.get(dropped)
        if current is None or (kept == dropped and not current[0]):
            loose[dropped] = (kept == dropped, row)
    normalized = [normalize_title(t) for t in titles]
    game_row = np.array(
        [
            plain.get(normalize_title(t, drop_editions=False), loose.get(n, (False, -1))[1])
            for t, n in zip(titles, normalized, strict=True)
        ],
        dtype=np.int64,
    )
    score = np.where(game_row >= 0, 1.0, 0.0)
    kind = np.where(game_row >= 0, "exact", "none").astype(object)
    rest = np.flatnonzero((game_row < 0) & np.array([bool(n) for n in normalized]))
    if len(rest) and len(games):
        game_vectors = encode([strip_platform(n) for n in games["name"].tolist()])
        item_vectors = encode([strip_platform(titles[i]) for i in rest])
        similarities, rows = search(build_index(game_vectors, "flat"), item_vectors, 1)
        accepted = similarities[:, 0] >= threshold
        game_row[rest[accepted]] = rows[accepted, 0]
        score[rest] = similarities[:, 0]
        kind[rest[accepted]] = "embedding"
    return Matches(game_row, score.astype(np.float32), kind.astype(str))


def empty_games() -> SteamGames:
    return SteamGames(pd.DataFrame([], columns=COLUMNS), "none", 0)


def matches_table(item_ids: np.ndarray, games: pd.DataFrame, matches: Matches) -> pd.DataFrame:
    """One row per item: the match (appid, name, score, how) and the game's facts, or nulls."""
    rows = matches.game_row
    picked = games.iloc[np.maximum(rows, 0)].reset_index(drop=True) if len(games) else None
    table = pd.DataFrame({"item_id": item_ids, "score": matches.score, "match_kind": matches.kind})
    for column in COLUMNS:
        values = picked[column].tolist() if picked is not None else [None] * len(rows)
        table[column] = [v if r >= 0 else None for v, r in zip(values, rows, strict=True)]
    for column in ("appid", "release_year"):
        table[column] = pd.array(table[column], dtype="Int64")  # nulls stay nulls in parquet
    table["price"] = pd.array(table["price"], dtype="Float64")
    return table.rename(columns={"name": "matched_name"})


def write_matches(table: pd.DataFrame, folder: Path) -> None:
    table.to_parquet(folder / MATCHES_FILE, index=False)


def read_steam_facts(folder: Path) -> list[dict | None]:
    """Per catalog item: its Steam facts, or None without a match."""
    rows = pq.read_table(folder / MATCHES_FILE).to_pylist()
    return [row if row["appid"] is not None else None for row in rows]
