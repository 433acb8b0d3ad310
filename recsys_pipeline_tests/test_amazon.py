from __future__ import annotations

import gzip
import hashlib
import json

import pytest
import requests

from recsys_pipeline.data.amazon import build_sequences_csv
from recsys_pipeline.data.download import DownloadError, download
from recsys_pipeline.data.input_csv import parse_sequences_csv
from recsys_pipeline.data.input_location import InputUnavailableError, locate_input_csv
from recsys_pipeline_tests.http_fakes import file_server, serve


def review(reviewer: str, asin: str, when: int) -> dict:
    """A review record as in Video_Games_5.json (Amazon Reviews 2018)."""
    return {
        "overall": 5.0,
        "verified": True,
        "reviewTime": "10 17, 2015",
        "reviewerID": reviewer,
        "asin": asin,
        "reviewerName": "someone",
        "reviewText": "Great game.",
        "summary": "Five Stars",
        "unixReviewTime": when,
        "style": {"Format:": " Video Game"},
    }


def meta(asin: str, title: str) -> dict:
    """An item record as in meta_Video_Games.json (Amazon Reviews 2018, metaFiles2)."""
    return {
        "category": ["Video Games", "PC", "Games"],
        "tech1": "",
        "description": ["A game."],
        "fit": "",
        "title": title,
        "also_buy": [],
        "brand": "Ubisoft",
        "feature": [],
        "rank": ">#1,000 in Video Games",
        "main_cat": "Video Games",
        "price": "$19.99",
        "asin": asin,
    }


def gz_lines(records: list[dict]) -> bytes:
    return gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())


REVIEWS = [
    review("U1", "B0002", 200),
    review("U1", "B0001", 100),
    review("U2", "B0003", 50),
    review("U1", "B0003", 200),  # same time as B0002: ties go by asin
    review("U2", "B0001", 60),
    review("U2", "B0001", 70),  # a duplicate review: the first is kept
    review("U3", "B0004", 10),
]
METAS = [
    meta("B0001", "Anno 2070 &amp; Friends"),
    meta("B0002", "Halo 3 - Xbox 360"),
    meta("B0003", "Zelda"),
    meta("B9999", "never reviewed"),
]


@pytest.fixture
def dump_files() -> dict[str, bytes]:
    return {"/reviews.json.gz": gz_lines(REVIEWS), "/meta.json.gz": gz_lines(METAS)}


def test_download_resumes_with_range_after_a_dropped_connection(tmp_path, dump_files):
    body = dump_files["/reviews.json.gz"]
    log: list = []
    with serve(file_server(dump_files, drop_first_after=100, log=log)) as url:
        got = download(
            f"{url}/reviews.json.gz", tmp_path / "r.json.gz", progress=False, chunk_bytes=10
        )
    assert got.resumed
    assert log == [("/reviews.json.gz", None), ("/reviews.json.gz", "bytes=100-")]
    assert (tmp_path / "r.json.gz").read_bytes() == body
    assert got.sha256 == hashlib.sha256(body).hexdigest() and got.bytes == len(body)
    assert not (tmp_path / "r.json.gz.part").exists()


def test_download_skips_a_finished_file(tmp_path, dump_files):
    log: list = []
    with serve(file_server(dump_files, log=log)) as url:
        download(f"{url}/meta.json.gz", tmp_path / "m.json.gz", progress=False)
        download(f"{url}/meta.json.gz", tmp_path / "m.json.gz", progress=False)
    assert len(log) == 1


def test_download_of_a_missing_file_is_a_clear_error(tmp_path, dump_files):
    with serve(file_server(dump_files)) as url, pytest.raises(DownloadError, match="404"):
        download(f"{url}/nope.json.gz", tmp_path / "x.gz", progress=False)


def test_builder_orders_by_time_then_asin_and_keeps_reviewer_ids_and_asins(tmp_path, dump_files):
    (tmp_path / "r.gz").write_bytes(dump_files["/reviews.json.gz"])
    (tmp_path / "m.gz").write_bytes(dump_files["/meta.json.gz"])
    stats = build_sequences_csv(tmp_path / "r.gz", tmp_path / "m.gz", tmp_path / "out.csv")
    parsed = parse_sequences_csv(tmp_path / "out.csv")
    h = parsed.histories
    # U1: B0001 (100), then B0002 and B0003 both at 200 -> by asin
    assert h.user_ids.tolist() == ["U1", "U2", "U3"]
    assert h[0].tolist() == ["B0001", "B0002", "B0003"]
    assert h[1].tolist() == ["B0003", "B0001"]  # B0003 (50), B0001 (60; the 70 duplicate dropped)
    assert h[2].tolist() == ["B0004"]
    assert parsed.titles == {
        "B0001": "Anno 2070 & Friends",
        "B0002": "Halo 3 - Xbox 360",
        "B0003": "Zelda",
        "B0004": "",
    }
    assert (stats.users, stats.items, stats.interactions) == (3, 4, 6)
    assert stats.duplicate_reviews == 1 and stats.items_without_title == 1


def test_locate_downloads_and_builds_when_no_csv_exists(tmp_path, dump_files):
    default = tmp_path / "raw" / "sequences.csv"
    with serve(file_server(dump_files)) as url:
        found = locate_input_csv(
            None,
            default,
            offline=False,
            reviews_url=f"{url}/reviews.json.gz",
            meta_url=f"{url}/meta.json.gz",
        )
    assert found.origin == "amazon-2018 download" and found.path == default and default.is_file()
    assert [d.sha256 for d in found.downloads] == [
        hashlib.sha256(dump_files[p]).hexdigest() for p in ("/reviews.json.gz", "/meta.json.gz")
    ]
    # the built file is the default input from now on
    assert locate_input_csv(None, default, offline=True).origin == "data dir"


def test_no_network_fails_with_one_clear_message(tmp_path):
    with serve(file_server({})) as url:
        dead = url  # the server is gone after this block: connections are refused
    default = tmp_path / "raw" / "sequences.csv"
    with pytest.raises(InputUnavailableError) as error:
        locate_input_csv(
            None,
            default,
            offline=False,
            reviews_url=f"{dead}/r.gz",
            meta_url=f"{dead}/m.gz",
            attempts=1,
            timeout_s=2,
        )
    assert "RECSYS_RAW_CSV" in str(error.value) and str(default) in str(error.value)


def test_offline_never_connects(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("offline mode made a request")

    monkeypatch.setattr(requests.Session, "request", refuse)
    with pytest.raises(InputUnavailableError, match="RECSYS_OFFLINE=1"):
        locate_input_csv(None, tmp_path / "sequences.csv", offline=True)


def test_explicit_path_is_never_replaced_by_a_download(tmp_path):
    found = locate_input_csv(tmp_path / "typo.csv", tmp_path / "sequences.csv", offline=False)
    assert found.path == tmp_path / "typo.csv" and found.origin == "RECSYS_RAW_CSV"
