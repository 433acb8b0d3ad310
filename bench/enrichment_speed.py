"""Benchmark: Wikipedia and LLM enrichment of the whole catalog (16,859 items) against the local
fakes with 100 ms latency per request, through the pipeline's real clients.

- Wikipedia: 50 titles per request, the production rate limit (10 requests/s).
- LLM: one chat completion per item with a summary, concurrency 16.

    .venv/bin/python -m bench.enrichment_speed
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

LATENCY_S = 0.1


def main() -> None:
    from experiments.common import real_data
    from recsys_pipeline.enrichment.cache import JsonCache
    from recsys_pipeline.enrichment.facts import FactExtractor, LLMSettings
    from recsys_pipeline.enrichment.titles import strip_platform
    from recsys_pipeline.enrichment.wikipedia import WikipediaClient
    from recsys_pipeline_tests.fake_services import MediaWikiFake, OpenAIFake
    from recsys_pipeline_tests.http_fakes import serve

    _, _, titles = real_data()
    queries = [strip_platform(t) for t in titles]
    pages = {q[:1].upper() + q[1:]: f"{q} is a 2005 video game." for q in queries[::2]}
    wiki = MediaWikiFake(pages)
    wiki.latency_s = LATENCY_S
    facts = {
        "release_year": 2005,
        "price": None,
        "genres": ["Action"],
        "developers": ["Studio"],
        "item_type": "Game",
        "platform": None,
    }
    llm = OpenAIFake(lambda user: (200, json.dumps(facts), None))
    llm.latency_s = LATENCY_S
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(wiki.handler()) as wiki_url,
        serve(llm.handler()) as llm_url,
    ):
        client = WikipediaClient(
            JsonCache(Path(tmp) / "wiki.sqlite"), api_url=wiki_url, contact="bench"
        )
        started = time.perf_counter()
        summaries = client.summaries(queries)
        wiki_seconds = time.perf_counter() - started
        items = [(t, summaries[q].extract, None) for t, q in zip(titles, queries, strict=True)]
        extractor = FactExtractor(
            JsonCache(Path(tmp) / "llm.sqlite"),
            LLMSettings(base_url=f"{llm_url}/v1", concurrency=16),
            api_key="sk-bench",
            offline=False,
        )
        started = time.perf_counter()
        extractor.extract(items)
        llm_seconds = time.perf_counter() - started
    distinct = len(set(queries))
    print("| step | requests | seconds | bar |")
    print("|---|---|---|---|")
    print(
        f"| Wikipedia, {distinct} distinct titles, 50 per request | {client.requests_made} | {wiki_seconds:.1f} | 60 s |"
    )
    print(f"| LLM facts, concurrency 16 | {extractor.stats.requests} | {llm_seconds:.1f} | 180 s |")


if __name__ == "__main__":
    main()
