"""The enrichment assets through Dagster: real clients against loopback fakes."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket

import dagster as dg
import pyarrow.parquet as pq
import pytest

from recsys_pipeline.resources import LLMService, SteamSource, WikipediaAPI
from recsys_pipeline_tests.conftest import write_rows
from recsys_pipeline_tests.fake_services import MediaWikiFake, OpenAIFake
from recsys_pipeline_tests.helpers import materialization_metadata, run_graph, step_logs
from recsys_pipeline_tests.http_fakes import serve
from recsys_pipeline_tests.test_enrichment import KAGGLE, scripted

SECRET = "sk-test-DO-NOT-LEAK-7f3a9"
ROWS = [
    [1, "[1, 2, 3]", "['Halo 3 - Xbox 360', 'Half-Life 2 - PC', 'Zelda']"],
    [2, "[2, 3, 4]", "['Half-Life 2 - PC', 'Zelda', 'Xbox 360 Wireless Controller']"],
    [3, "[4, 1, 5]", "['Xbox 360 Wireless Controller', 'Halo 3 - Xbox 360', 'Mystery Game']"],
]
ENRICHMENT = "steam_enrichment,wiki_summaries,wiki_enrichment,item_profiles"


@pytest.fixture
def small(tmp_path):
    csv = write_rows(tmp_path / "in.csv", ROWS)
    steam = tmp_path / "steam.csv"
    steam.write_text(KAGGLE)
    return csv, steam


def materialize(resources_for, csv, instance=None, **resources):
    return run_graph(
        resources_for(csv, **resources),
        selection=["raw_csv", "sequences", "tokenizer", *ENRICHMENT.split(",")],
        instance=instance,
    )


def test_online_enrichment_with_an_api_key_that_never_leaks(
    tmp_path, small, resources_for, monkeypatch, caplog
):
    csv, steam = small
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    wiki = MediaWikiFake({"Halo 3": "Halo 3 is a 2007 first-person shooter by Bungie."})
    llm = OpenAIFake(scripted)
    caplog.set_level(logging.DEBUG)
    with (
        dg.DagsterInstance.ephemeral() as instance,
        serve(wiki.handler()) as wiki_url,
        serve(llm.handler()) as llm_url,
    ):
        result = materialize(
            resources_for,
            csv,
            instance,
            steam_source=SteamSource(path=str(steam)),
            wikipedia=WikipediaAPI(api_url=wiki_url, min_interval_s=0.0),
            llm=LLMService(base_url=f"{llm_url}/v1", model="fake-model"),
        )
        logs = step_logs(instance, result.run_id)
    assert result.success
    facts = materialization_metadata(result, "wiki_enrichment")
    assert (facts["status/llm"], facts["status/rules"], facts["llm_requests"]) == (1, 4, 1)
    assert facts["prompt_tokens"] == 100 and facts["estimated_cost_usd"] > 0
    headers = {k.lower(): v for k, v in llm.requests[0]["headers"].items()}
    assert headers["authorization"] == f"Bearer {SECRET}"  # it was used...
    everything = json.dumps(
        [str(e) for e in result.all_events] + [r.getMessage() for r in caplog.records], default=str
    )
    assert SECRET not in everything  # ...but is nowhere in events, metadata or logs
    steam_meta = materialization_metadata(result, "steam_enrichment")
    assert steam_meta["format"] == "kaggle-csv" and steam_meta["matched_exact"] >= 1
    profiles = pq.read_table(tmp_path / "data" / "artifacts" / "item_profiles" / "profiles.parquet")
    halo, half_life = profiles.column("profile").to_pylist()[:2]
    assert (
        "Release Year: 2007" in halo
        and "Developers: Bungie" in halo
        and "Platform: Xbox 360" in halo
    )
    assert "Price: 9.99 USD" in half_life and "Developers: Valve" in half_life
    # each step's progress reaches its Dagster log, to the end: the Steam names and the titles
    # without an exact match encoded, the titles asked of Wikipedia, every item's facts
    closing = {
        "steam_enrichment": [
            "text encoding: 2 / 2 texts (100.0%)",
            "text encoding: 4 / 4 texts (100.0%)",
        ],
        "wiki_summaries": ["Wikipedia: 5 / 5 titles (100.0%)"],
        "wiki_enrichment": ["fact extraction: 5 / 5 items (100.0%)"],
    }
    for step, starts in closing.items():
        lines = [line for line in logs[step] if ", took " in line]
        assert len(lines) == len(starts), lines
        assert all(line.startswith(start) for line, start in zip(lines, starts, strict=True)), lines


def test_offline_makes_no_connection_at_all(tmp_path, small, resources_for, monkeypatch):
    csv, steam = small
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    real_connect = socket.socket.connect

    def loopback_only(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
            raise AssertionError(f"offline run tried to connect to {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    result = materialize(
        resources_for,
        csv,
        steam_source=SteamSource(path=str(steam)),
        wikipedia=WikipediaAPI(offline=True),  # the real default URLs, never reached
        llm=LLMService(offline=True),
    )
    assert result.success
    assert materialization_metadata(result, "wiki_summaries")["status/offline"] == 5
    assert materialization_metadata(result, "wiki_enrichment")["fallback"] == "RECSYS_OFFLINE=1"


def test_partial_failure_still_materialises_with_status_counts(tmp_path, small, resources_for):
    csv, _ = small
    wiki = MediaWikiFake({"Halo 3": "A 2007 game."})
    wiki.script = [500] * 10  # every attempt of the only batch fails
    with serve(wiki.handler()) as url:
        result = materialize(
            resources_for, csv, wikipedia=WikipediaAPI(api_url=url, retries=1, min_interval_s=0.0)
        )
    assert result.success
    assert materialization_metadata(result, "wiki_summaries")["status/failed"] == 5
    assert materialization_metadata(result, "steam_enrichment")["source"] == "none"


def test_an_explicit_missing_steam_file_fails_clearly(tmp_path, small, resources_for):
    from recsys_pipeline_tests.helpers import failure_message

    csv, _ = small
    result = run_graph(
        resources_for(csv, steam_source=SteamSource(path=str(tmp_path / "typo.csv"))),
        selection=["raw_csv", "sequences", "tokenizer", "steam_enrichment"],
        raise_on_error=False,
    )
    assert "typo.csv: Steam games file not found" in failure_message(result)
