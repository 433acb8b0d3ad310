"""The online API through its ASGI test client, on a tiny graph built once for the module."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from recsys_pipeline.ranking.topk_files import read_top_k_csv
from recsys_pipeline.resources import (
    InputSource,
    LLMService,
    RecsysStorage,
    SteamSource,
    WikipediaAPI,
)
from recsys_pipeline.serving.app import create_app
from recsys_pipeline.serving.batching import Batcher
from recsys_pipeline.serving.schemas import MAX_BATCH
from recsys_pipeline_tests.conftest import REPO, tiny_rows, write_rows
from recsys_pipeline_tests.helpers import run_graph

FAST_SFT = {"config": {"stage1_epochs": 1, "stage2_epochs": 1}}
SERVE_SFT = {"config": {"serve_model": "sft"}}


def resources(root) -> dict:
    return {
        "storage": RecsysStorage(data_dir=str(root / "data")),
        "input_source": InputSource(raw_csv=str(root / "in.csv"), offline=True),
        "steam_source": SteamSource(),
        "wikipedia": WikipediaAPI(offline=True),
        "llm": LLMService(offline=True),
    }


def served_graph(root: Path) -> Path:
    """``root`` with the tiny graph run under it: the service's artifacts are under
    ``root / "data" / "artifacts"``."""
    write_rows(root / "in.csv", tiny_rows())
    assert run_graph(resources(root), sft_checkpoint=FAST_SFT, dpo_checkpoint=SERVE_SFT).success
    return root


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    return served_graph(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def client(graph):
    with TestClient(create_app(graph / "data" / "artifacts", poll=False)) as client:
        yield client


def recommend(client, **body):
    response = client.post("/recommend", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_every_known_user_gets_exactly_the_batch_predictions(graph, client):
    users, lists = read_top_k_csv(graph / "data" / "artifacts" / "predictions" / "predictions.csv")
    for user, expected in zip(users.tolist(), lists, strict=True):
        answer = recommend(client, user_id=user, exclude_history=False)
        assert [item["item_id"] for item in answer["items"]] == expected, user
    assert answer["model"] == "sft" and answer["fallback"] is None


def test_a_history_sent_now_is_scored_like_the_same_known_user(client):
    known = recommend(client, user_id=3, k=5)
    history = client.app.state.server.bundle.histories[3].tolist()
    sent = recommend(client, history=history, k=5)
    assert sent["items"] == known["items"] and len(sent["items"]) == 5
    scores = [item["score"] for item in sent["items"]]
    assert scores == sorted(scores, reverse=True)
    assert not {item["item_id"] for item in sent["items"]} & set(history)  # excluded by default
    assert all(item["title"] for item in sent["items"])


def test_the_batch_endpoint_answers_like_single_requests(client):
    requests = [
        {"user_id": 1, "k": 3},
        {"history": [5, 6, 7], "k": 10, "exclude_history": False},
        {"history": []},
    ]
    response = client.post("/recommend/batch", json={"requests": requests})
    assert response.status_code == 200, response.text
    batch = response.json()["responses"]
    assert [len(r["items"]) for r in batch] == [3, 10, 10]
    for request, answer in zip(requests, batch, strict=True):
        assert answer == recommend(client, **request)
    too_many = {"requests": [{"history": [1]}] * (MAX_BATCH + 1)}
    response = client.post("/recommend/batch", json=too_many)
    assert response.status_code == 422 and "requests" in response.text


def test_an_empty_history_is_served_by_popularity_and_says_so(client):
    answer = recommend(client, history=[])
    assert answer["fallback"] == "popularity" and answer["history_used"] == 0
    counts = [item["score"] for item in answer["items"]]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]


def test_a_history_longer_than_the_model_reads_keeps_the_most_recent_items(client):
    bundle = client.app.state.server.bundle
    reads = bundle.max_history_length
    long = (list(range(1, 41)) * 2)[: reads + 5]
    answer = recommend(client, history=long, exclude_history=False)
    assert answer["truncated"] is True and answer["history_used"] == reads
    recent = recommend(client, history=long[-reads:], exclude_history=False)
    assert recent["items"] == answer["items"] and recent["truncated"] is False


def test_a_history_excluding_all_but_a_few_items_gets_the_few_that_remain(client):
    catalog = sorted(client.app.state.server.bundle.titles)
    history, remaining = catalog[3:], catalog[:3]
    answer = recommend(client, history=history, k=10)
    got = [item["item_id"] for item in answer["items"]]
    assert sorted(got) == remaining and not set(got) & set(history)
    scores = [item["score"] for item in answer["items"]]
    assert scores == sorted(scores, reverse=True)
    assert recommend(client, history=catalog, k=10)["items"] == []  # nothing left at all
    batch = {"requests": [{"history": history, "k": 2}, {"history": [1], "k": 10}]}
    response = client.post("/recommend/batch", json=batch)
    assert response.status_code == 200, response.text
    assert [len(r["items"]) for r in response.json()["responses"]] == [2, 10]
    # k over the catalog's size: the whole catalog, best first
    assert len(recommend(client, history=[1], k=100, exclude_history=False)["items"]) == 40


def test_the_batch_path_still_refuses_a_top_k_with_fewer_than_k_items(client):
    from recsys_pipeline.data.histories import Histories
    from recsys_pipeline.ranking.retrieval import recommend as retrieve

    bundle = client.app.state.server.bundle
    history = Histories.from_lists([0], [sorted(bundle.titles)[3:]])
    with pytest.raises(ValueError, match="fewer than 10 recommendable items for 1 of 1 users"):
        retrieve(bundle.model, bundle.index, history, bundle.vocab, 10, exclude_history=True)
    padded = retrieve(bundle.model, bundle.index, history, bundle.vocab, 10, True, allow_fewer=True)
    assert padded.items.shape == (1, 10) and np.isinf(padded.scores[0, 3:]).all()
    assert np.isfinite(padded.scores[0, :3]).all()


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        ({"history": [1, 2, 999, 5000, 999]}, 422, ["unknown item ids: [999, 5000]"]),
        ({"history": [1], "k": 0}, 422, ['"k"', "greater than or equal to 1"]),
        ({"history": [1], "k": 101}, 422, ['"k"', "less than or equal to 100"]),
        ({"history": "abc"}, 422, ['"history"', "valid list"]),
        ({"history": [1, "two"]}, 422, ["unknown item ids: ['two']"]),
        ({"history": [1], "k": "ten"}, 422, ['"k"']),
        ({}, 422, ["exactly one of history or user_id"]),
        ({"history": [1], "user_id": 1}, 422, ["exactly one of history or user_id"]),
        ({"history": [1], "size": 3}, 422, ['"size"', "Extra inputs are not permitted"]),
        ({"user_id": 123456}, 404, ["user_id 123456 is not a known user"]),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(client, body, status, names):
    response = client.post("/recommend", json=body)
    assert response.status_code == status, response.text
    for name in names:
        assert name in response.text
    assert "Traceback" not in response.text


def no_constants(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


def post_raw(client, body: bytes, url: str = "/recommend") -> httpx.Response:
    return client.post(url, content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"history": [true]}', "history"),  # lax pydantic took it for item 1
        (b'{"history": [1.0]}', "history"),
        (b'{"user_id": false}', "user_id"),
        (b'{"history": [1], "k": true}', "k"),
        (b'{"history": [1], "k": 5.0}', "k"),
        (b'{"history": [1], "exclude_history": "yes"}', "exclude_history"),
        (b'{"history": [1], "exclude_history": 0}', "exclude_history"),
        (b'{"requests": [{"history": [true]}]}', "requests"),
    ],
)
def test_values_of_another_json_type_are_refused_not_coerced(client, body, field):
    url = "/recommend/batch" if b"requests" in body else "/recommend"
    response = post_raw(client, body, url)
    assert response.status_code == 422, response.text
    assert all(error["loc"][1] == field for error in response.json()["detail"])


@pytest.mark.parametrize(
    ("body", "loc", "echoed"),
    [
        (b'{"history": [NaN]}', ["body", "history", 0, "int"], "NaN"),
        (b'{"history": [1, Infinity]}', ["body", "history", 1, "int"], "Infinity"),
        (b'{"history": [-Infinity]}', ["body", "history", 0, "int"], "-Infinity"),
        (b'{"history": [1e400]}', ["body", "history", 0, "int"], "Infinity"),
        (b'{"user_id": NaN}', ["body", "user_id", "int"], "NaN"),
        (b'{"history": [1], "k": NaN}', ["body", "k"], "NaN"),
        (b'{"history": [1], "k": 1e400}', ["body", "k"], "Infinity"),
        (b'{"history": [1], "k": "\\ud800"}', ["body", "k"], "\\ud800"),
        (b'{"history": [1], "exclude_history": NaN}', ["body", "exclude_history"], "NaN"),
        (b'{"history": [1], "\\ud800": 1}', ["body"], "\\ud800"),  # pydantic: the key
        (b'{"history": [1], "size": "\\ud800"}', ["body", "size"], "\\ud800"),
        (
            b'{"requests": [{"history": [NaN]}]}',
            ["body", "requests", 0, "history", 0, "int"],
            "NaN",
        ),
    ],
)
def test_input_json_cannot_carry_back_is_echoed_as_text_in_a_422(client, body, loc, echoed):
    url = "/recommend/batch" if b"requests" in body else "/recommend"
    response = post_raw(client, body, url)
    assert response.status_code == 422, response.text
    errors = json.loads(response.content.decode("utf-8"), parse_constant=no_constants)["detail"]
    assert {"loc": loc, "input": echoed} in [{"loc": e["loc"], "input": e["input"]} for e in errors]


def test_unknown_ids_json_cannot_carry_back_are_escaped(client):
    response = post_raw(client, b'{"history": [1, "\\ud800", "\\udfff"]}')
    assert response.status_code == 422, response.text
    detail = json.loads(response.content.decode("utf-8"))["detail"]
    assert detail["loc"] == ["body", "history"] and detail["unknown"] == ["\\ud800", "\\udfff"]
    response = post_raw(client, b'{"user_id": "\\ud800"}')
    assert response.status_code == 404
    assert json.loads(response.content.decode("utf-8"))["detail"] == (
        "user_id \\ud800 is not a known user"
    )


def test_ids_beyond_int64_are_not_in_the_catalog(client):
    digits = "9" * 5000
    for id_ in (digits, "9" * 4300, "9" * 20, "-" + "9" * 19):
        response = client.get(f"/items/{id_}")
        assert response.status_code == 404 and "not in the catalog" in response.text
    response = client.post("/recommend", json={"history": [1, digits]})
    assert response.status_code == 422 and response.json()["detail"]["unknown"] == [digits]
    response = client.post("/recommend", json={"user_id": digits})
    assert response.status_code == 404 and "not a known user" in response.text
    # JSON integers of over 4300 digits, which Python's JSON parser refuses
    for body in (f'{{"history": [{digits}]}}', f'{{"user_id": {digits}}}'):
        response = post_raw(client, body.encode())
        assert response.status_code == 400 and response.json()["detail"], response.text
    response = post_raw(client, f'{{"history": [{"9" * 4300}]}}'.encode())
    assert response.status_code == 422 and response.json()["detail"]["unknown"] == [int("9" * 4300)]


def test_bodies_over_a_mebibyte_and_broken_json_are_refused_cleanly(client):
    huge = json.dumps({"history": [1] * 400_000}).encode()
    assert len(huge) > 1 << 20
    response = client.post("/recommend", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "over 1048576 bytes" in response.text

    def chunks():  # no Content-Length: the body is counted as it streams
        for _ in range(40):
            yield b" " * 30_000

    response = client.post(
        "/recommend", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    response = client.post(
        "/recommend", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422 and "Traceback" not in response.text


def test_items_health_and_metrics(client):
    item = client.get("/items/1")
    assert item.status_code == 200 and item.json()["title"] and item.json()["purchases"] >= 0
    assert client.get("/items/424242").status_code == 404
    assert client.get("/items/abc").status_code == 404
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "sft"
    assert health["catalog_size"] == 40 and health["known_users"] == 60
    assert health["index_kind"] == "flat" and health["uptime_seconds"] >= 0
    recommend(client, user_id=1)
    assert client.post("/recommend", json={"k": 0}).status_code == 422
    text = client.get("/metrics").text
    assert 'recsys_requests_total{endpoint="/recommend",status="200"}' in text
    assert 'recsys_requests_total{endpoint="/recommend",status="422"}' in text
    assert "recsys_request_seconds_bucket" in text and "recsys_recommendations_total" in text
    assert client.get("/docs").status_code == 200


def test_a_trailing_slash_is_a_404_not_a_redirect_to_the_host_header(client):
    for method, path in (("GET", "/health/"), ("GET", "/items/1/"), ("POST", "/recommend/")):
        response = client.request(
            method, path, headers={"host": "evil.example"}, follow_redirects=False
        )
        assert response.status_code == 404 and "location" not in response.headers
        assert "evil" not in response.text


@pytest.mark.parametrize("path", ["/health", "/items/1", "/metrics", "/openapi.json", "/docs"])
def test_head_is_get_without_the_body(client, path):
    head, get = client.head(path), client.get(path)
    assert head.status_code == get.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert int(head.headers["content-length"]) > 0
    if path not in ("/health", "/metrics"):  # those two change between the calls
        assert head.headers["content-length"] == get.headers["content-length"]


def test_head_keeps_refusals(client):
    missing = client.head("/items/424242")
    assert missing.status_code == 404 and missing.content == b""
    assert int(missing.headers["content-length"]) == len(client.get("/items/424242").content)
    for path in ("/recommend", "/recommend/batch"):
        response = client.head(path)
        assert response.status_code == 405 and response.headers["allow"] == "POST"


def test_concurrent_requests_share_one_pass_and_a_lone_one_does_not_wait():
    passes = []

    class Recorder:
        def recommend(self, histories, k, exclude):
            passes.append(len(histories))
            return [f"answer to {h}" for h in histories]

    bundle, batcher = Recorder(), Batcher(wait_ms=1000)

    async def timed(*histories):
        started = time.perf_counter()
        answers = await asyncio.gather(*(batcher.submit(bundle, [h], 10, True) for h in histories))
        return [a for (a,) in answers], time.perf_counter() - started

    async def scenario():
        alone, alone_s = await timed([1])
        eight, eight_s = await timed(*([i] for i in range(8)))
        again, again_s = await timed(*([i, i] for i in range(8)))  # as many as last time: no wait
        late, late_s = await timed([9])  # under load, a lone request waits for company...
        after, after_s = await timed([10])  # ...but not once the load is gone
        assert eight == [f"answer to {[i]}" for i in range(8)] and late == ["answer to [9]"]
        assert max(alone_s, eight_s, again_s, after_s) < 0.5 and 0.9 < late_s < 5.0

    asyncio.run(scenario())
    assert passes == [1, 8, 8, 1, 1]


def test_large_passes_run_off_the_event_loop_and_deliver_answers_and_errors():
    import threading as threads

    where = []

    class Recorder:
        def recommend(self, histories, k, exclude):
            where.append((len(histories), threads.current_thread().name.startswith("pass")))
            if histories[0] == ["fail"]:
                raise RuntimeError("broken pass")
            return [f"answer to {h}" for h in histories]

    bundle, batcher = Recorder(), Batcher(wait_ms=0, offload_at=3)

    async def scenario():
        small = await asyncio.gather(*(batcher.submit(bundle, [[i]], 10, True) for i in range(2)))
        large = await asyncio.gather(*(batcher.submit(bundle, [[i]], 10, True) for i in range(5)))
        assert [a for (a,) in small] == ["answer to [0]", "answer to [1]"]
        assert [a for (a,) in large] == [f"answer to {[i]}" for i in range(5)]
        with pytest.raises(RuntimeError, match="broken pass"):
            await batcher.submit(bundle, [["fail"], [1], [2]], 10, True)

    asyncio.run(scenario())
    assert where == [(2, False), (5, True), (3, True)]


@pytest.mark.parametrize("offload_at", [256, 2])  # on the event loop, on the worker thread
def test_a_failing_pass_is_scored_again_request_by_request(offload_at):
    passes = []

    class Recorder:
        def recommend(self, histories, k, exclude):
            passes.append(len(histories))
            if ["poison"] in histories:
                raise RuntimeError("poisoned")
            return [f"answer to {h}" for h in histories]

    bundle, batcher = Recorder(), Batcher(wait_ms=0, offload_at=offload_at)

    async def scenario():
        jobs = [[[1]], [[2], [3]], [["poison"]], [[4]]]
        submits = (batcher.submit(bundle, job, 10, True) for job in jobs)
        return await asyncio.gather(*submits, return_exceptions=True)

    first, second, poisoned, fourth = asyncio.run(scenario())
    assert first == ["answer to [1]"] and second == ["answer to [2]", "answer to [3]"]
    assert fourth == ["answer to [4]"] and isinstance(poisoned, RuntimeError)
    assert passes == [5, 1, 2, 1, 1]


def test_one_failing_request_fails_no_other_that_shared_its_pass(graph, monkeypatch):
    from recsys_pipeline.serving.bundle import Bundle

    poison, shared, scored = [7, 7, 7], [], Bundle.recommend

    def recommend_or_fail(self, histories, k, exclude):
        if poison in histories:
            shared.append(len(histories))
            raise RuntimeError("poisoned")
        return scored(self, histories, k, exclude)

    monkeypatch.setattr(Bundle, "recommend", recommend_or_fail)
    app = create_app(graph / "data" / "artifacts", poll=False)  # its own error counts

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            bodies = [{"history": [i % 40 + 1, 3]} for i in range(60)]
            bodies.insert(30, {"history": poison})
            return await asyncio.gather(*(client.post("/recommend", json=b) for b in bodies))

    responses = asyncio.run(scenario())
    poisoned = responses.pop(30)
    assert poisoned.status_code == 500 and poisoned.json() == {"detail": "internal error"}
    assert [r.status_code for r in responses] == [200] * 60
    assert max(shared) > 1  # the poisoned request did share a pass with others


def test_a_failure_inside_the_service_is_a_json_500_without_a_trace(client, monkeypatch):
    from recsys_pipeline.serving.bundle import Bundle

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Bundle, "recommend", broken)
    response = client.post("/recommend", json={"history": [1, 2]})
    assert response.status_code == 500 and response.json() == {"detail": "internal error"}
    text = client.get("/metrics").text
    assert 'recsys_requests_total{endpoint="/recommend",status="500"}' in text
    assert "recsys_internal_errors_total 1.0" in text


def test_a_new_model_is_swapped_in_while_requests_run(tmp_path):
    write_rows(tmp_path / "in.csv", tiny_rows(seed=5))
    assert run_graph(resources(tmp_path), sft_checkpoint=FAST_SFT, dpo_checkpoint=SERVE_SFT).success
    app = create_app(tmp_path / "data" / "artifacts", poll=False)
    server = app.state.server
    seen, errors, stop = set(), [], threading.Event()

    def ask() -> None:
        with TestClient(app) as client:
            while not stop.is_set():
                response = client.post("/recommend", json={"history": [1, 2, 3]})
                if response.status_code != 200:
                    errors.append(response.text)
                else:
                    seen.add((response.json()["model"], response.json()["model_version"]))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    before = server.bundle.model_version
    # the pipeline publishes a new served model (and index) while the requests go on
    serve_dpo = {"config": {"serve_model": "dpo"}}
    assert run_graph(
        resources(tmp_path), selection="dpo_checkpoint*", dpo_checkpoint=serve_dpo
    ).success
    assert server.reload_if_newer()
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert server.bundle.model_name == "dpo" and server.bundle.model_version != before
    assert ("sft", before) in seen and ("dpo", server.bundle.model_version) in seen
    assert not server.reload_if_newer()  # nothing newer now


def test_a_failed_reload_keeps_the_old_model_and_says_so(graph, client, monkeypatch):
    from recsys_pipeline.serving import reload

    server = client.app.state.server
    before = server.bundle
    healthy = client.get("/health")
    assert healthy.status_code == 200 and healthy.json()["last_error"] is None
    monkeypatch.setattr(reload, "published_version", lambda root: "a-version-that-breaks")
    assert not server.reload_if_newer()
    degraded = client.get("/health")
    # 503, so that a probe or load balancer sees it; the same body, saying why
    assert degraded.status_code == 503 and degraded.headers["content-type"] == "application/json"
    health = degraded.json()
    assert health["status"] == "degraded" and "a-version-that-breaks" in health["last_error"]
    assert health.keys() == healthy.json().keys()
    assert health["index_version"] == before.version and health["model"] == "sft"
    declared = client.get("/openapi.json").json()["paths"]["/health"]["get"]["responses"]
    for status in ("200", "503"):  # one schema for both answers
        schema = declared[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Health"}, status
    assert client.head("/health").status_code == 503
    assert recommend(client, user_id=1)["model"] == "sft"  # still serving

    # the next version published loads: healthy again
    newer = dataclasses.replace(before, version="a-version-that-loads")
    monkeypatch.setattr(reload, "published_version", lambda root: newer.version)
    monkeypatch.setattr(reload, "load_bundle", lambda store, version: newer)
    try:
        assert server.reload_if_newer()
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.json()["last_error"] is None
        assert health.json()["index_version"] == "a-version-that-loads"
    finally:  # the module's other tests share this server
        server.bundle, server.last_error = before, None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> set[str]:
    """Local addresses listening on ``port`` (IPv4 and IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if int(hex_port, 16) == port and state == "0A":  # LISTEN
                found.add(address)
    return found


def test_the_service_binds_to_127_0_0_1_unless_told_otherwise(graph, tmp_path):
    port = free_port()
    env = {**os.environ, "RECSYS_DATA_DIR": str(graph / "data"), "PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "recsys_pipeline.serving"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline
                time.sleep(0.3)
        assert listening(port) == {"0100007F"}  # 127.0.0.1, and nothing else
    finally:
        server.terminate()
        server.communicate(timeout=30)
    empty = {**env, "RECSYS_DATA_DIR": str(tmp_path / "nothing")}
    done = subprocess.run(
        [sys.executable, "-m", "recsys_pipeline.serving"], cwd=REPO, env=empty, capture_output=True
    )
    assert done.returncode != 0 and b"no served model under" in done.stderr
    assert b"make run" in done.stderr


def test_string_ids_in_and_out(tmp_path):
    from recsys_pipeline_tests.test_assets import string_rows

    rows = string_rows()
    write_rows(tmp_path / "in.csv", rows)
    assert run_graph(resources(tmp_path), sft_checkpoint=FAST_SFT, dpo_checkpoint=SERVE_SFT).success
    with TestClient(create_app(tmp_path / "data" / "artifacts", poll=False)) as client:
        users, lists = read_top_k_csv(
            tmp_path / "data" / "artifacts" / "predictions" / "predictions.csv"
        )
        answer = recommend(client, user_id=rows[0][0], exclude_history=False)
        assert [i["item_id"] for i in answer["items"]] == lists[users.tolist().index(rows[0][0])]
        asin = answer["items"][0]["item_id"]
        assert isinstance(asin, str) and asin.startswith("B")
        assert recommend(client, history=[asin])["items"][0]["item_id"] != asin
        assert client.get(f"/items/{asin}").json()["item_id"] == asin
        response = client.post("/recommend", json={"history": [asin, 12345]})
        assert response.status_code == 422 and "unknown item ids: [12345]" in response.text
