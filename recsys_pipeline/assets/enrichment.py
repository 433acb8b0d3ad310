"""steam_enrichment, wiki_summaries, wiki_enrichment and item_profiles: facts about each item
from a Steam store file, Wikipedia and an LLM, merged into one profile text per item."""

from collections import Counter

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recsys_pipeline.assets._metadata import markdown_table
from recsys_pipeline.assets.vocab import tokenizer
from recsys_pipeline.resources import LLMService, RecsysStorage, SteamSource, WikipediaAPI
from recsys_pipeline.settings import load_settings

STEAM_FILE = "steam_matches.parquet"
SUMMARIES_FILE = "summaries.parquet"
FACTS_FILE = "facts.parquet"
PROFILES_FILE = "profiles.parquet"
SHOWN = 8


class SteamEnrichmentConfig(dg.Config):
    # cosine similarity of title embeddings above which a non-exact match is accepted;
    # chosen on a hand-labelled sample (README: "Steam matching")
    threshold: float = 0.88
    model: str = load_settings().profile.embedding_model


def _catalog(storage: RecsysStorage) -> tuple[np.ndarray, list[str]]:
    from recsys_pipeline.item_vocab import load_titles, load_vocab

    folder = storage.artifacts().path("tokenizer")
    return load_vocab(folder).item_ids, load_titles(folder)


@dg.asset(group_name="enrichment", kinds={"parquet", "faiss"}, deps=[tokenizer])
def steam_enrichment(
    context: dg.AssetExecutionContext,
    config: SteamEnrichmentConfig,
    storage: RecsysStorage,
    steam_source: SteamSource,
) -> dg.MaterializeResult:
    """Each item's Steam store game: exact normalised title, else nearest title embedding."""
    from recsys_pipeline.enrichment.steam import (
        SteamFileError,
        empty_games,
        load_steam_games,
        match_items,
        matches_table,
    )
    from recsys_pipeline.item_text import encode_texts

    item_ids, titles = _catalog(storage)
    path, _explicit = steam_source.locate(storage.raw_dir)
    if path is None:
        context.log.warning(
            f"no Steam games file at {storage.raw_dir / 'steam.csv'} and RECSYS_STEAM_CSV is unset: "
            "items get no Steam facts"
        )
        loaded = empty_games()
    else:
        try:
            loaded = load_steam_games(path)
        except SteamFileError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from exc
    matches = match_items(
        titles, loaded.games, config.threshold, lambda t: encode_texts(t, config.model)
    )
    table = matches_table(item_ids, loaded.games, matches)
    with storage.artifacts().writing("steam_enrichment") as folder:
        table.to_parquet(folder / STEAM_FILE, index=False)
    kinds = Counter(matches.kind.tolist())
    matched = np.flatnonzero(matches.game_row >= 0)
    examples = [
        (titles[i], table.matched_name.iat[i], f"{matches.score[i]:.2f}", matches.kind[i])
        for i in matched[:SHOWN]
    ]
    return dg.MaterializeResult(
        metadata={
            "source": str(path) if path else "none",
            "format": loaded.format,
            "games": len(loaded.games),
            "broken_rows": loaded.broken_rows,
            "matched_exact": kinds.get("exact", 0),
            "matched_embedding": kinds.get("embedding", 0),
            "matched_share": len(matched) / max(1, len(item_ids)),
            "threshold": config.threshold,
            "examples": markdown_table(["item", "Steam game", "score", "how"], examples),
        }
    )


@dg.asset(group_name="enrichment", kinds={"parquet"}, deps=[tokenizer])
def wiki_summaries(
    context: dg.AssetExecutionContext, storage: RecsysStorage, wikipedia: WikipediaAPI
) -> dg.MaterializeResult:
    """The lead section of each item's English Wikipedia article (title without its platform
    suffix), through the MediaWiki API with batching, retries, rate limit and an on-disk cache."""
    from recsys_pipeline.enrichment.cache import JsonCache
    from recsys_pipeline.enrichment.titles import strip_platform
    from recsys_pipeline.enrichment.wikipedia import WikipediaClient

    item_ids, titles = _catalog(storage)
    queries = [strip_platform(t) for t in titles]
    cache = JsonCache(storage.root / "cache" / "wikipedia.sqlite")
    client = WikipediaClient(
        cache,
        api_url=wikipedia.api_url,
        contact=wikipedia.contact,
        offline=wikipedia.offline,
        timeout_s=wikipedia.timeout_s,
        retries=wikipedia.retries,
        min_interval_s=wikipedia.min_interval_s,
    )
    if wikipedia.offline:
        context.log.info("RECSYS_OFFLINE=1: Wikipedia summaries come from the cache only")
    summaries = client.summaries(queries)
    answers = [summaries.get(q) for q in queries]
    table = pa.table(
        {
            "item_id": pa.array(item_ids, pa.int64()),
            "query": pa.array(queries, pa.string()),
            "status": pa.array([a.status if a else "missing" for a in answers], pa.string()),
            "article": pa.array([a.title if a else None for a in answers], pa.string()),
            "extract": pa.array([a.extract if a else None for a in answers], pa.string()),
        }
    )
    with storage.artifacts().writing("wiki_summaries") as folder:
        pq.write_table(table, folder / SUMMARIES_FILE)
    status = Counter(table.column("status").to_pylist())
    cached = len(cache)
    cache.close()
    return dg.MaterializeResult(
        metadata={
            "items": len(item_ids),
            "status": dict(status),
            "requests": client.requests_made,
            "cached_titles": cached,
            "api_url": wikipedia.api_url,
        }
    )


@dg.asset(
    group_name="enrichment",
    kinds={"parquet", "openai"},
    deps=[wiki_summaries, steam_enrichment, tokenizer],
)
def wiki_enrichment(
    context: dg.AssetExecutionContext, storage: RecsysStorage, llm: LLMService
) -> dg.MaterializeResult:
    """Structured facts (release year, price, genres, developers, item type, platform) from each
    Wikipedia summary by an LLM (cached), or by rules when offline, keyless or unreachable."""
    from recsys_pipeline.enrichment.cache import JsonCache
    from recsys_pipeline.enrichment.facts import FactExtractor, LLMSettings

    artifacts = storage.artifacts()
    item_ids, titles = _catalog(storage)
    summaries = (
        pq.read_table(artifacts.path("wiki_summaries") / SUMMARIES_FILE)
        .column("extract")
        .to_pylist()
    )
    steam = steam_facts(artifacts)
    cache = JsonCache(storage.root / "cache" / "llm.sqlite")
    settings = LLMSettings(
        model=llm.model,
        base_url=llm.base_url,
        concurrency=llm.concurrency,
        timeout_s=llm.timeout_s,
        max_retries=llm.max_retries,
    )
    extractor = FactExtractor(
        cache, settings, llm.api_key(), llm.offline, log_line=context.log.warning
    )
    results = extractor.extract(list(zip(titles, summaries, steam, strict=True)))
    cache.close()
    facts = [f for f, _ in results]
    table = pa.Table.from_pylist(
        [
            {"item_id": int(i), "status": s, **f.model_dump()}
            for i, (f, s) in zip(item_ids, results, strict=True)
        ]
    )
    with artifacts.writing("wiki_enrichment") as folder:
        pq.write_table(table, folder / FACTS_FILE)
    stats = extractor.stats
    return dg.MaterializeResult(
        metadata={
            "items": len(facts),
            "status": dict(stats.status),
            "llm_model": llm.model,
            "llm_requests": stats.requests,
            "cache_hits": stats.cache_hits,
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "estimated_cost_usd": extractor.estimated_cost_usd,
            "fallback": stats.fallback_reason or "",
        }
    )


def steam_facts(artifacts: object) -> list[dict | None]:
    """Per catalog item: its Steam facts, or None without a match."""
    rows = pq.read_table(artifacts.path("steam_enrichment") / STEAM_FILE).to_pylist()
    return [
        row if row["appid"] is not None and row["appid"] == row["appid"] else None for row in rows
    ]


@dg.asset(
    group_name="enrichment", kinds={"parquet"}, deps=[steam_enrichment, wiki_enrichment, tokenizer]
)
def item_profiles(storage: RecsysStorage) -> dg.MaterializeResult:
    """One profile text per item: "Item Title: …; Item Type: …; Release Year: …; Genres: …;
    Platform: …; Price: … USD; Developers: …" (Steam preferred, lists unioned)."""
    from recsys_pipeline.enrichment.facts import ItemFacts
    from recsys_pipeline.enrichment.profiles import merge_facts, profile_text

    artifacts = storage.artifacts()
    item_ids, titles = _catalog(storage)
    steam = steam_facts(artifacts)
    extracted = pq.read_table(artifacts.path("wiki_enrichment") / FACTS_FILE).to_pylist()
    names = set(ItemFacts.model_fields)
    merged = [
        merge_facts(s, ItemFacts(**{k: v for k, v in e.items() if k in names}))
        for s, e in zip(steam, extracted, strict=True)
    ]
    profiles = [profile_text(t, f) for t, f in zip(titles, merged, strict=True)]
    with artifacts.writing("item_profiles") as folder:
        pq.write_table(
            pa.table(
                {
                    "item_id": pa.array(item_ids, pa.int64()),
                    "profile": pa.array(profiles, pa.string()),
                }
            ),
            folder / PROFILES_FILE,
        )
    known = {
        field: float(np.mean([getattr(f, field) not in (None, [], "Unknown") for f in merged]))
        for field in ("item_type", "release_year", "genres", "platform", "price", "developers")
    }
    return dg.MaterializeResult(
        metadata={
            "items": len(profiles),
            "known_share": known,
            "examples": markdown_table(["profile"], [(p,) for p in profiles[:SHOWN]]),
        }
    )


def read_profiles(folder: object) -> list[str]:
    return pq.read_table(folder / PROFILES_FILE).column("profile").to_pylist()
