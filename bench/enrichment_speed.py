"""Benchmark: Wikipedia and LLM enrichment of the whole catalog (16,859 items) against the local
fakes with 100 ms latency per request, through the pipeline's real clients.

- Wikipedia: 50 titles per request, the production rate limit (10 requests/s).
- LLM: one chat completion per item with a summary, concurrency 16.

The figures are kept in bench/results/enrichment_speed.json (``--cache``) with the command, commit,
machine and date, where ``python -m experiments.report`` reads them.

    .venv/bin/python -m bench.enrichment_speed [--cache PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TypedDict

from recsys_pipeline.monitoring.provenance import REPO, command_line, save_result

LATENCY_S = 0.1
CONCURRENCY = 16
CACHE = REPO / "bench" / "results" / "enrichment_speed.json"
BAR_SECONDS = {"wikipedia": 60, "llm": 180}


class Measurement(TypedDict):
    items: int  # the catalog's
    distinct_titles: int  # the Wikipedia queries
    titles_per_request: int
    requests_per_s: float  # the Wikipedia client's rate limit
    wikipedia_requests: int
    wikipedia_seconds: float
    concurrency: int  # the LLM client's
    llm_requests: int
    llm_seconds: float
    latency_s: float  # each fake's, per request


def cache_rows(measured: Measurement) -> list[dict[str, str]]:
    """The cached table: each client's requests and seconds, and the bar they stay under."""
    return [
        {
            "step": f"Wikipedia, {measured['distinct_titles']:,} distinct titles, "
            f"{measured['titles_per_request']} a request, {measured['requests_per_s']:g} requests/s",
            "requests": f"{measured['wikipedia_requests']:,}",
            "seconds": f"{measured['wikipedia_seconds']:.1f}",
            "bar": str(BAR_SECONDS["wikipedia"]),
        },
        {
            "step": f"LLM facts, concurrency {measured['concurrency']} (items with a summary)",
            "requests": f"{measured['llm_requests']:,}",
            "seconds": f"{measured['llm_seconds']:.1f}",
            "bar": str(BAR_SECONDS["llm"]),
        },
    ]


def cache_notes(measured: Measurement) -> list[str]:
    """What ran: how many items, against what."""
    return [
        f"All {measured['items']:,} items through the real clients, against the loopback fakes "
        f"at {measured['latency_s'] * 1000:.0f} ms a request."
    ]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the figures are kept")
    args = parser.parse_args(argv)
    from experiments.common import real_data
    from recsys_pipeline.enrichment.cache import JsonCache
    from recsys_pipeline.enrichment.facts import FactExtractor, LLMSettings
    from recsys_pipeline.enrichment.titles import strip_platform
    from recsys_pipeline.enrichment.wikipedia import BATCH, WikipediaClient
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
            LLMSettings(base_url=f"{llm_url}/v1", concurrency=CONCURRENCY),
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
        f"| Wikipedia, {distinct} distinct titles, {BATCH} per request | {client.requests_made} "
        f"| {wiki_seconds:.1f} | {BAR_SECONDS['wikipedia']} s |"
    )
    print(
        f"| LLM facts, concurrency {CONCURRENCY} | {extractor.stats.requests} | {llm_seconds:.1f} "
        f"| {BAR_SECONDS['llm']} s |"
    )
    measured = Measurement(
        items=len(titles),
        distinct_titles=distinct,
        titles_per_request=BATCH,
        requests_per_s=1 / client.min_interval_s,
        wikipedia_requests=client.requests_made,
        wikipedia_seconds=wiki_seconds,
        concurrency=CONCURRENCY,
        llm_requests=extractor.stats.requests,
        llm_seconds=llm_seconds,
        latency_s=LATENCY_S,
    )
    command = command_line("bench.enrichment_speed", argv)
    save_result(args.cache, command, cache_rows(measured), notes=cache_notes(measured))
    print(f"kept in {args.cache}")


if __name__ == "__main__":
    main()
