from __future__ import annotations

import json
import logging
import time

import pytest

from recsys_pipeline.enrichment.cache import JsonCache
from recsys_pipeline.enrichment.facts import (
    INVALID,
    LLM,
    REFUSED,
    RULES,
    FactExtractor,
    ItemFacts,
    LLMSettings,
    rule_based_facts,
)
from recsys_pipeline.enrichment.profiles import merge_facts, profile_text
from recsys_pipeline.enrichment.steam import SteamFileError, load_steam_games, match_items
from recsys_pipeline.enrichment.titles import normalize_title, platform_from_title
from recsys_pipeline.enrichment.wikipedia import FAILED, FOUND, MISSING, OFFLINE, WikipediaClient
from recsys_pipeline_tests.fake_services import MediaWikiFake, OpenAIFake
from recsys_pipeline_tests.http_fakes import serve

PAGES = {
    "Halo 3": "Halo 3 is a 2007 first-person shooter developed by Bungie.",
    "Zelda": "A 1986 game.",
}


def wiki_client(tmp_path, url, **kwargs) -> WikipediaClient:
    kwargs.setdefault("min_interval_s", 0.0)
    return WikipediaClient(
        JsonCache(tmp_path / "wiki.sqlite"), api_url=url, contact="ops@example.org", **kwargs
    )


# --- titles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "normalized", "platform"),
    [
        ("Half-Life 2: Game of the Year Edition - PC", "half life 2", "PC"),
        ("Halo 3 - Xbox 360", "halo 3", "Xbox 360"),
        ("Sid Meier's Civilization V (PC)", "sid meiers civilization v", "PC"),
        ("Tom Clancy&#39;s Splinter Cell - Sony PSP", "tom clancys splinter cell", "PSP"),
        ("Assassin's Creed II Deluxe Edition [Online Game Code]", "assassins creed ii", "PC"),
        ("PlayStation 4 500GB Console", "playstation 4 500gb console", None),
    ],
)
def test_title_normalisation(title, normalized, platform):
    assert normalize_title(title) == normalized
    assert platform_from_title(title) == platform


# --- Wikipedia ------------------------------------------------------------------------------------


def test_wikipedia_batches_follows_redirects_and_marks_missing(tmp_path):
    fake = MediaWikiFake(PAGES, redirects={"Halo III": "Halo 3"})
    titles = ["Halo III", "zelda", "No Such Game"] + [f"Filler {i}" for i in range(97)]
    with serve(fake.handler()) as url:
        client = wiki_client(tmp_path, url)
        found = client.summaries(titles)
    assert len(fake.requests) == 2  # 100 titles, 50 per request
    assert found["Halo III"].status == FOUND and found["Halo III"].title == "Halo 3"
    assert found["zelda"].extract == "A 1986 game."  # normalised first letter
    assert found["No Such Game"].status == MISSING
    params = fake.requests[0]["params"]
    assert (
        params["prop"] == "extracts" and params["exintro"] == "1" and params["explaintext"] == "1"
    )
    assert params["redirects"] == "1" and params["maxlag"] == "5"
    assert "ops@example.org" in fake.requests[0]["headers"]["User-Agent"]


def test_second_run_is_served_from_the_cache(tmp_path):
    fake = MediaWikiFake(PAGES)
    with serve(fake.handler()) as url:
        wiki_client(tmp_path, url).summaries(["Halo 3", "Nope"])
        asked = len(fake.requests)
        again = wiki_client(tmp_path, url).summaries(["Halo 3", "Nope"])
    assert len(fake.requests) == asked == 1
    assert again["Halo 3"].status == FOUND and again["Nope"].status == MISSING


def test_429_with_retry_after_then_success(tmp_path):
    fake = MediaWikiFake(PAGES)
    fake.script = [429]
    with serve(fake.handler()) as url:
        started = time.monotonic()
        found = wiki_client(tmp_path, url).summaries(["Halo 3"])
    assert found["Halo 3"].status == FOUND
    assert len(fake.requests) == 2 and time.monotonic() - started >= 1.0  # honoured Retry-After


def test_server_errors_are_retried(tmp_path):
    fake = MediaWikiFake(PAGES)
    fake.script = [500, 500]
    with serve(fake.handler()) as url:
        found = wiki_client(tmp_path, url).summaries(["Halo 3"])
    assert found["Halo 3"].status == FOUND and len(fake.requests) == 3


def test_a_slow_response_fails_the_batch_without_caching_it(tmp_path):
    fake = MediaWikiFake(PAGES)
    fake.script = ["slow"]
    with serve(fake.handler()) as url:
        client = wiki_client(tmp_path, url, timeout_s=0.3, retries=0)
        first = client.summaries(["Halo 3"])
        second = client.summaries(["Halo 3"])  # not cached: asked again, and now it answers
    assert first["Halo 3"].status == FAILED
    assert second["Halo 3"].status == FOUND


def test_offline_uses_the_cache_only(tmp_path):
    fake = MediaWikiFake(PAGES)
    with serve(fake.handler()) as url:
        wiki_client(tmp_path, url).summaries(["Halo 3"])
        offline = wiki_client(tmp_path, url, offline=True).summaries(["Halo 3", "Zelda"])
    assert len(fake.requests) == 1
    assert offline["Halo 3"].status == FOUND and offline["Zelda"].status == OFFLINE


# --- LLM facts ------------------------------------------------------------------------------------

GOOD = {
    "release_year": 2007,
    "price": None,
    "genres": ["First-person shooter"],
    "developers": ["Bungie"],
    "item_type": "Game",
    "platform": "Xbox 360",
}


def scripted(user: str) -> tuple[int, str | None, str | None]:
    if "refuse" in user:
        return 200, None, "I can't help with that."
    if "broken" in user:
        return 200, '{"release_year": 2007, "genres": [', None
    if "wrongtype" in user:
        return 200, json.dumps({**GOOD, "item_type": "Spaceship"}), None
    if "cutoff" in user:
        return 200, '{"release_year": 2007, "genres": ["First', None, "length"
    if "filtered" in user:
        return 200, None, None, "content_filter"
    return 200, json.dumps(GOOD), None


def extractor(tmp_path, url, **settings) -> FactExtractor:
    settings.setdefault("max_retries", 1)
    return FactExtractor(
        JsonCache(tmp_path / "llm.sqlite"),
        LLMSettings(base_url=f"{url}/v1", model="fake-model", **settings),
        api_key="sk-test-not-a-real-key",
        offline=False,
    )


def test_llm_structured_output_refusal_and_invalid_json(tmp_path):
    fake = OpenAIFake(scripted)
    items = [
        ("Halo 3 - Xbox 360", "Halo 3 is a 2007 shooter.", None),
        ("refuse me", "text", None),
        ("broken json", "text", None),
        ("wrongtype", "text", None),
        (
            "No summary - PC",
            None,
            {"release_year": 2010, "genres": ["Action"], "price": 9.99, "developers": ["X"]},
        ),
    ]
    with serve(fake.handler()) as url:
        ex = extractor(tmp_path, url)
        results = ex.extract(items)
    assert results[0] == (ItemFacts(**GOOD), LLM)
    assert results[1] == (ItemFacts(), REFUSED)
    assert results[2] == (ItemFacts(), INVALID) and results[3] == (ItemFacts(), INVALID)
    assert (
        results[4][1] == RULES
        and results[4][0].genres == ["Action"]
        and results[4][0].platform == "PC"
    )
    # one ask each for the good and refused item, two (retry) for each invalid one
    assert len(fake.requests) == 1 + 1 + 2 + 2
    request = fake.requests[0]["body"]
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["strict"] is True
    # the client's schema of ItemFacts, as strict mode wants it (the fake refuses anything else)
    assert request["response_format"]["json_schema"]["name"] == "ItemFacts"
    schema = request["response_format"]["json_schema"]["schema"]
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert list(schema["properties"]) == schema["required"] == list(ItemFacts.model_fields)
    assert schema["properties"]["item_type"]["enum"] == ["Game", "Hardware", "Unknown"]
    # every answer is paid for, the invalid ones too
    assert ex.stats.requests == 6 and ex.stats.completion_tokens == 120
    assert ex.stats.prompt_tokens == 600 and ex.estimated_cost_usd > 0


def test_llm_cut_off_answers_are_invalid_and_filtered_ones_refused(tmp_path):
    fake = OpenAIFake(scripted)
    items = [("cutoff", "text", None), ("filtered", "text", None)]
    with serve(fake.handler()) as url:
        ex = extractor(tmp_path, url, concurrency=1)
        results = ex.extract(items)
    assert results == [(ItemFacts(), INVALID), (ItemFacts(), REFUSED)]
    assert len(fake.requests) == 2 + 1  # a cut-off answer is asked again; the filter is final
    assert ex.stats.requests == 3 and ex.stats.prompt_tokens == 300
    assert ex.stats.status == {INVALID: 1, REFUSED: 1}


def test_the_fake_endpoint_refuses_a_schema_strict_mode_refuses(tmp_path):
    from openai import BadRequestError, OpenAI

    loose = {"type": "object", "properties": {"year": {"type": "integer"}}, "required": []}
    fake = OpenAIFake(scripted)
    with serve(fake.handler()) as url:
        client = OpenAI(api_key="sk-test-not-a-real-key", base_url=f"{url}/v1", max_retries=0)
        for schema, refusal in (
            (loose, "'additionalProperties' is required"),
            ({**loose, "additionalProperties": False}, "Missing 'year'"),
        ):
            with pytest.raises(BadRequestError, match=refusal):
                client.chat.completions.create(
                    model="fake-model",
                    messages=[{"role": "user", "content": "Halo 3"}],
                    response_format={
                        "type": "json_schema",
                        "json_schema": {"name": "loose", "schema": schema, "strict": True},
                    },
                )


def test_llm_cache_hit_makes_no_request(tmp_path):
    fake = OpenAIFake(scripted)
    items = [("Halo 3", "Halo 3 is a 2007 shooter.", None)]
    with serve(fake.handler()) as url:
        extractor(tmp_path, url).extract(items)
        again = extractor(tmp_path, url)
        results = again.extract(items)
    assert len(fake.requests) == 1 and again.stats.cache_hits == 1 and results[0][1] == LLM


def test_llm_rate_limit_is_retried(tmp_path):
    calls = []

    def limited(user: str) -> tuple[int, str | None, str | None]:
        calls.append(user)
        return (429, None, None) if len(calls) == 1 else scripted(user)

    fake = OpenAIFake(limited)
    with serve(fake.handler()) as url:
        results = extractor(tmp_path, url, max_retries=2).extract([("Halo 3", "text", None)])
    assert results[0][1] == LLM and len(fake.requests) == 2


def test_slow_or_unreachable_endpoint_falls_back_to_rules(tmp_path):
    fake = OpenAIFake(scripted)
    fake.latency_s = 1.0
    items = [(f"Game {i} - PC", "A 2001 game.", None) for i in range(6)]
    with serve(fake.handler()) as url:
        ex = extractor(tmp_path, url, timeout_s=0.2, max_retries=0, concurrency=1)
        results = ex.extract(items)
    assert all(status == RULES for _, status in results)
    assert results[0][0].release_year == 2001 and results[0][0].platform == "PC"
    assert "unreachable" in ex.stats.fallback_reason
    assert len(fake.requests) == 3  # gave up after three consecutive connection failures


def test_no_key_or_offline_means_rules_and_one_log_line(tmp_path):
    lines = []
    for key, offline, reason in (
        (None, False, "no OPENAI_API_KEY"),
        ("sk-x", True, "RECSYS_OFFLINE=1"),
    ):
        ex = FactExtractor(
            JsonCache(tmp_path / "c.sqlite"), LLMSettings(), key, offline, log_line=lines.append
        )
        results = ex.extract([("Halo 3 - Xbox 360", "A 2007 game.", None)] * 3)
        assert all(s == RULES for _, s in results)
        assert ex.stats.fallback_reason == reason
    assert len(lines) == 2 and all("rule-based" in line for line in lines)


def test_rules_spot_hardware():
    assert rule_based_facts("Xbox 360 Wireless Controller", None, None).item_type == "Hardware"
    assert rule_based_facts("Halo 3 - Xbox 360", None, None).item_type == "Game"


# --- Steam ----------------------------------------------------------------------------------------

KAGGLE = (
    "appid,name,release_date,english,developer,publisher,platforms,required_age,categories,genres,"
    "steamspy_tags,achievements,positive_ratings,negative_ratings,average_playtime,median_playtime,owners,price\n"
    "10,Half-Life 2,2004-11-16,1,Valve,Valve,windows;mac;linux,0,Single-player,Action;FPS,Action,0,1,1,1,1,1-2,9.99\n"
    "oops,Broken Row,2004-11-16,1,Valve,Valve,windows,0,x,Action,Action,0,1,1,1,1,1-2,1.0\n"
    "20,Sid Meier's Civilization V,2010-09-21,1,Firaxis Games;Aspyr,2K,windows,0,Single-player,Strategy,Strategy,0,1,1,1,1,1-2,29.99\n"
)
FRONKON = {
    "10": {
        "name": "Half-Life 2",
        "release_date": "Nov 16, 2004",
        "price": 9.99,
        "developers": ["Valve"],
        "genres": ["Action"],
        "short_description": "The sequel.",
    },
    "x": {"name": "no numeric id"},
}


def test_both_steam_formats_and_a_broken_row(tmp_path):
    csv_path, json_path = tmp_path / "steam.csv", tmp_path / "games.json"
    csv_path.write_text(KAGGLE)
    json_path.write_text(json.dumps(FRONKON))
    kaggle = load_steam_games(csv_path)
    assert kaggle.format == "kaggle-csv" and kaggle.broken_rows == 1 and len(kaggle.games) == 2
    civ = kaggle.games.set_index("appid").loc[20]
    assert (
        civ.developers == ["Firaxis Games", "Aspyr"]
        and civ.release_year == 2010
        and civ.price == 29.99
    )
    fronkon = load_steam_games(json_path)
    assert fronkon.format == "fronkon-json" and fronkon.broken_rows == 1
    assert (
        fronkon.games.iloc[0].description == "The sequel."
        and fronkon.games.iloc[0].release_year == 2004
    )


def test_missing_steam_file_is_a_clear_error(tmp_path):
    with pytest.raises(SteamFileError, match="nothere.csv: Steam games file not found"):
        load_steam_games(tmp_path / "nothere.csv")


def test_matching_exact_then_embedding():
    import numpy as np

    games = load_steam_games_from_text(KAGGLE).games

    def encode(texts):  # a stand-in encoder: bag of letters, unit length
        vectors = np.array(
            [[t.lower().count(c) for c in "abcdefghijklmnopqrstuvwxyz0123456789"] for t in texts],
            float,
        )
        return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)).astype(
            np.float32
        )

    titles = [
        "Half-Life 2: Game of the Year Edition - PC",
        "Sid Meiers Civilisation 5 - PC",
        "Zzzz Qqqq - Wii",
    ]
    matches = match_items(titles, games, threshold=0.8, encode=encode)
    assert matches.kind.tolist() == ["exact", "embedding", "none"]
    assert matches.game_row.tolist()[:2] == [0, 1] and matches.game_row[2] == -1


def load_steam_games_from_text(text: str):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "steam.csv"
        path.write_text(text)
        return load_steam_games(path)


# --- profiles -------------------------------------------------------------------------------------


def test_merge_prefers_known_values_and_unions_lists():
    steam = {"release_year": 2004, "price": 9.99, "genres": ["Action"], "developers": ["Valve"]}
    extracted = ItemFacts(
        release_year=2005,
        genres=["action", "FPS"],
        developers=["Unknown"],
        item_type="Game",
        platform="PC",
    )
    merged = merge_facts(steam, extracted)
    assert (
        merged.release_year == 2004
        and merged.genres == ["Action", "FPS"]
        and merged.developers == ["Valve"]
    )
    text = profile_text("Half-Life 2 - PC", merged)
    assert text == (
        "Item Title: Half-Life 2 - PC; Item Type: Game; Release Year: 2004; Genres: Action, FPS; "
        "Platform: PC; Price: 9.99 USD; Developers: Valve"
    )
    assert "Release Year: Unknown" in profile_text("Mystery", merge_facts(None, ItemFacts()))


def test_an_unreachable_api_is_given_up_after_a_few_batches(tmp_path, caplog):
    fake = MediaWikiFake(PAGES)
    fake.script = [500] * 100
    with serve(fake.handler()) as url, caplog.at_level(logging.WARNING):
        found = wiki_client(tmp_path, url, retries=0).summaries([f"Title {i}" for i in range(500)])
    assert len(fake.requests) == 3  # three failed batches in a row, then the other seven skipped
    failures = [r.getMessage() for r in caplog.records if "titles failed" in r.getMessage()]
    assert len(failures) == 3 and all("500" in m and "api.php" not in m for m in failures)
    assert {s.status for s in found.values()} == {FAILED} and len(found) == 500
