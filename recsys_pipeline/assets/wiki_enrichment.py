"""wiki_summaries and wiki_enrichment: each item's Wikipedia lead section, and the structured
facts an LLM (or, offline, rules) reads from it."""

from collections import Counter

import dagster as dg

from recsys_pipeline.assets.versions import data_version, published, reading
from recsys_pipeline.automation import ON_UPSTREAM_CHANGE
from recsys_pipeline.resources.services import LLMService, WikipediaAPI
from recsys_pipeline.resources.storage import RecsysStorage
from recsys_pipeline.settings import Settings


@dg.asset(
    group_name="enrichment",
    kinds={"parquet"},
    deps=["tokenizer"],
    automation_condition=ON_UPSTREAM_CHANGE,
)
def wiki_summaries(
    context: dg.AssetExecutionContext, storage: RecsysStorage, wikipedia: WikipediaAPI
) -> dg.MaterializeResult:
    """The lead section of each item's English Wikipedia article (title without its platform
    suffix), through the MediaWiki API with batching, retries, rate limit and an on-disk cache."""
    from recsys_pipeline.data.vocab import load_titles, load_vocab
    from recsys_pipeline.enrichment.cache import JsonCache
    from recsys_pipeline.enrichment.titles import strip_platform
    from recsys_pipeline.enrichment.wikipedia import write_summaries

    store = storage.artifacts()
    with reading(context, storage, "tokenizer") as inputs:
        titles = load_titles(inputs["tokenizer"])
        item_ids = load_vocab(inputs["tokenizer"]).item_ids
    queries = [strip_platform(t) for t in titles]
    cache = JsonCache(storage.root / "cache" / "wikipedia.sqlite")
    client = wikipedia.client(cache)
    if wikipedia.offline:
        context.log.info("RECSYS_OFFLINE=1: Wikipedia summaries come from the cache only")
    summaries = client.summaries(queries, progress_log=context.log.info)
    with store.writing("wiki_summaries") as folder:
        table = write_summaries(folder, item_ids, queries, [summaries.get(q) for q in queries])
    cached = len(cache)
    cache.close()
    status = Counter(table.column("status").to_pylist())
    # What Wikipedia answered is an input too (a cached answer is the same input again).
    version = data_version(context, inputs, {"answers": table.column("extract").to_pylist()})
    return published(
        context,
        store,
        version,
        {
            "items": len(titles),
            **{f"status/{name}": count for name, count in sorted(status.items())},
            "requests": client.requests_made,
            "cached_titles": cached,
            "api_url": wikipedia.api_url,
        },
    )


@dg.asset(
    group_name="enrichment",
    kinds={"parquet", "openai"},
    deps=["wiki_summaries", "steam_enrichment", "tokenizer"],
    automation_condition=ON_UPSTREAM_CHANGE,
)
def wiki_enrichment(
    context: dg.AssetExecutionContext, storage: RecsysStorage, llm: LLMService
) -> dg.MaterializeResult:
    """Structured facts (release year, price, genres, developers, item type, platform) from each
    Wikipedia summary by an LLM (cached), or by rules when offline, keyless or unreachable."""
    from recsys_pipeline.data.vocab import load_titles, load_vocab
    from recsys_pipeline.enrichment.cache import JsonCache
    from recsys_pipeline.enrichment.facts import write_facts
    from recsys_pipeline.enrichment.steam import read_steam_facts
    from recsys_pipeline.enrichment.wikipedia import read_extracts

    store = storage.artifacts()
    with reading(context, storage, "tokenizer", "wiki_summaries", "steam_enrichment") as inputs:
        titles = load_titles(inputs["tokenizer"])
        item_ids = load_vocab(inputs["tokenizer"]).item_ids
        summaries = read_extracts(inputs["wiki_summaries"])
        steam = read_steam_facts(inputs["steam_enrichment"])
    cache = JsonCache(storage.root / "cache" / "llm.sqlite")
    extractor = llm.extractor(cache, log_line=context.log.warning)
    items = list(zip(titles, summaries, steam, strict=True))
    results = extractor.extract(items, progress_log=context.log.info)
    cache.close()
    with store.writing("wiki_enrichment") as folder:
        write_facts(folder, item_ids, results)
    stats = extractor.stats
    facts = [[f.model_dump(), status] for f, status in results]
    return published(
        context,
        store,
        data_version(context, inputs, {"llm_model": llm.model, "facts": facts}),
        {
            "items": len(results),
            **{f"status/{name}": count for name, count in sorted(stats.status.items())},
            "llm_model": llm.model,
            "llm_requests": stats.requests,
            "cache_hits": stats.cache_hits,
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "estimated_cost_usd": extractor.estimated_cost_usd,
            "fallback": stats.fallback_reason or "",
        },
    )


def definitions(_settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[wiki_summaries, wiki_enrichment])
