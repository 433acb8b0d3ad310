"""The data and enrichment benchmarks write their caches: bench.data_pipeline, bench.interaction_log,
bench.encoder_batch, bench.enrichment_speed and experiments.steam_matching keep what they measured
through ``save_result``, in rows with the columns of the committed cache, which
``experiments.report`` prints as it prints the committed one. Rows come from small made-up
measurements, or from the script itself in its smallest mode where that takes a few seconds; every
cache goes to a temporary path, never over the committed one."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from bench import data_pipeline, encoder_batch, enrichment_speed, interaction_log
from experiments import report, steam_matching
from recsys_pipeline.monitoring.provenance import Result, load_result, save_result


def columns(rows: list[dict]) -> list[str]:
    """A table's columns as experiments.report orders them, without the rows' own provenance."""
    keys = dict.fromkeys(key for row in rows for key in row)
    return [key for key in keys if key not in report.ROW_PROVENANCE]


def tables_of(rows: Any) -> list[list[dict]]:
    return list(rows.values()) if isinstance(rows, dict) else [rows]


def check(result: Result, committed: Path, command: str, threads: int | None = None) -> None:
    """``result``, as load_result reads it back, has the committed cache's shape and columns, this
    measurement's provenance only, and renders as a table of those columns."""
    old = load_result(committed)
    assert isinstance(result["rows"], dict) == isinstance(old["rows"], dict)
    new_tables, old_tables = tables_of(result["rows"]), tables_of(old["rows"])
    assert [columns(t) for t in new_tables] == [columns(t) for t in old_tables]
    assert result["command"] == command
    assert "source" not in result  # measured, not backfilled
    assert result.get("threads") == threads
    for table in new_tables:
        for row in table:
            assert not set(row) & set(report.ROW_PROVENANCE), row  # the cache's provenance only
    lines = report.tables(dict(result))
    headers = [line for line in lines if line.startswith("| ")]
    for table in new_tables:
        header = "| " + " | ".join(report.cell(c) for c in columns(table)) + " |"
        assert header in headers, (header, lines)
    source = next(line for line in lines if line.startswith(report.SOURCE))
    assert f"`{command}`" in source and "backfilled" not in source
    if threads:
        assert f"{threads} threads" in source


def saved(tmp_path: Path, command: str, rows: Any, notes: list[str], threads: int | None = None):
    path = tmp_path / "cache.json"
    save_result(path, command, rows, notes=notes, threads=threads)
    return load_result(path)


def test_data_pipeline_cache(tmp_path):
    measured = data_pipeline.Measurement(
        cli_seconds=21.34, peak_rss_gib=0.281, reference_parse_seconds=2.69, our_parse_seconds=2.8
    )
    rows = data_pipeline.cache_rows(measured)
    assert [row["value"] for row in rows] == [
        "21.3 s",
        "0.28 GiB",
        "2.69 s",
        "2.80 s (0.96× the reference speed)",
    ]
    command = ".venv/bin/python -m bench.data_pipeline"
    check(saved(tmp_path, command, rows, []), data_pipeline.CACHE, command)


def test_interaction_log_runs_tiny_and_writes_its_cache(tmp_path, capsys):
    cache = tmp_path / "results" / "interaction_log.json"
    args = ["--events", "2000", "--users", "200", "--items", "50", "--scratch", str(tmp_path)]
    interaction_log.main([*args, "--cache", str(cache)])
    assert "| ours, streaming |" in capsys.readouterr().out  # the printed table, as before
    result = load_result(cache)
    command = f".venv/bin/python -m bench.interaction_log {' '.join(args)} --cache {cache}"
    check(result, interaction_log.CACHE, command)
    assert result["notes"][0].startswith("A generated log of 2,000 events (200 users, 50 items;")
    assert result["notes"][1].startswith("ours / reference: ")


def test_interaction_log_rows():
    measured = interaction_log.Measurement(
        events=10_000_000,
        users=1_000_000,
        items=100_000,
        file_gib=0.34,
        ours=interaction_log.Run(seconds=78.2, peak_rss_gib=1.0),
        whole=interaction_log.Run(seconds=50.4, peak_rss_gib=2.0),
    )
    rows = interaction_log.cache_rows(measured)
    assert [(r["seconds"], r["peak RSS GiB"], r["RSS / file size"]) for r in rows] == [
        ("78", "1.00", "2.94"),
        ("50", "2.00", "5.88"),
    ]
    assert (
        interaction_log.cache_notes(measured)[1] == "ours / reference: 0.50× peak RSS, 1.55× time."
    )


def test_encoder_batch_cache(tmp_path):
    measured = encoder_batch.Measurement(
        texts=4000,
        model="all-MiniLM-L6-v2",
        precision="bfloat16",
        pipeline_batch=64,
        texts_per_s={256: 200.0, 16: 250.0, 32: 280.0, 64: 301.0, 128: 240.0},
        max_diff={256: 0.0, 16: 2e-7, 32: 1.5e-7, 64: 1.7e-7, 128: 0.0},
        precisions=encoder_batch.Precisions(
            batch=64,
            texts_per_s={"float32": 414.0, "bfloat16": 1068.0},
            cosine_mean=0.99998,
            cosine_min=0.9998,
            neighbour_kept=0.986,
        ),
    )
    rows = encoder_batch.cache_rows(measured)
    by_batch, by_precision = rows.values()
    assert [row["batch"] for row in by_batch] == ["256", "16", "32", "64 (the pipeline's)", "128"]
    assert by_batch[3]["ratio to 256"] == "1.50×"
    assert [row["max |Δ| to 256's vectors"] for row in by_batch] == [
        "–",
        "2.0e-7",
        "1.5e-7",
        "1.7e-7",
        "0",
    ]
    assert by_precision[1] == {
        "precision": "bfloat16",
        "texts/s": "1,068",
        "ratio to float32": "2.58×",
    }
    notes = encoder_batch.cache_notes(measured)
    assert notes == [
        "bf16 against float32: cosine mean 1.0000, min 0.9998; the nearest neighbour kept for "
        "98.6% of the texts."
    ]
    command = ".venv/bin/python -m bench.encoder_batch --threads 2"
    result = saved(tmp_path, command, rows, notes, threads=2)
    check(result, encoder_batch.CACHE, command, threads=2)


def test_enrichment_speed_runs_on_a_few_titles_and_writes_its_cache(tmp_path, monkeypatch):
    import experiments.common

    titles = ["Halo 3 - Xbox 360", "Portal 2 - PC", "Tetris", "Doom - PC", "Myst"]
    monkeypatch.setattr(experiments.common, "real_data", lambda: (None, None, titles))
    cache = tmp_path / "enrichment_speed.json"
    enrichment_speed.main(["--cache", str(cache)])
    result = load_result(cache)
    command = f".venv/bin/python -m bench.enrichment_speed --cache {cache}"
    check(result, enrichment_speed.CACHE, command)
    wikipedia, llm = result["rows"]
    assert wikipedia["step"] == "Wikipedia, 5 distinct titles, 50 a request, 10 requests/s"
    # one request for the 5 titles; the fake has a page for every other one, which the LLM reads
    assert (wikipedia["requests"], llm["requests"]) == ("1", "3")
    assert result["notes"] == [
        "All 5 items through the real clients, against the loopback fakes at 100 ms a request."
    ]


def test_steam_matching_cache(tmp_path):
    thresholds = [(0.80, 97, 0.67, 0.855, 0.751), (0.88, 66, 0.818, 0.711, 0.761)]
    measured = steam_matching.Measurement(
        items=16_859,
        games=27_075,
        seconds=31.4,
        labelled=169,
        positives=76,
        default_threshold=0.88,
        catalog_share=0.15,
        by_threshold=[
            steam_matching.AtThreshold(threshold=t, matched=m, precision=p, recall=r, f1=f)
            for t, m, p, r, f in thresholds
        ],
    )
    rows = steam_matching.cache_rows(measured)
    assert [row["threshold"] for row in rows] == ["0.80", "**0.88** (default)"]
    assert rows[0] == {
        "threshold": "0.80",
        "matched (of 169)": "97",
        "precision": "0.670",
        "recall": "0.855",
        "F1": "0.751",
    }
    notes = steam_matching.cache_notes(measured)
    assert notes[0] == "Matched 16,859 items against 27,075 games in 31.4 s (bar: 60 s)."
    assert notes[2] == "The whole catalog matched at the default threshold 0.88: 15.0%."
    command = ".venv/bin/python -m experiments.steam_matching"
    check(saved(tmp_path, command, rows, notes), steam_matching.CACHE, command)


def test_steam_matching_runs_on_made_up_matches_and_writes_its_cache(tmp_path, monkeypatch):
    """main() on the labelled sample with the matcher replaced: every labelled game matched right
    at 0.99, every item without one matched wrong at 0.5."""
    import experiments.common
    import recsys_pipeline.enrichment.steam as steam
    import recsys_pipeline.settings as settings

    with (steam_matching.EXPERIMENTS / "steam_labels.csv").open() as labels:
        labelled = list(csv.DictReader(labels))
    truth = [int(r["steam_appids"].split(";")[0]) if r["steam_appids"] else 0 for r in labelled]
    games = pd.DataFrame({"appid": sorted(set(truth)), "name": "a game"})
    row_of = {appid: row for row, appid in enumerate(games.appid)}
    matches = steam.Matches(
        game_row=np.array([row_of[a] for a in truth]),
        score=np.array([0.99 if a else 0.5 for a in truth], dtype=np.float32),
        kind=np.array(["embedding" if a else "none" for a in truth]),
    )
    vocab = SimpleNamespace(item_ids=np.array([int(r["item_id"]) for r in labelled]))
    titles = [r["title"] for r in labelled]
    steam_file = tmp_path / "steam.csv"
    steam_file.write_text("")
    monkeypatch.setattr(experiments.common, "real_data", lambda: (None, vocab, titles))
    monkeypatch.setattr(settings, "SHARED_STEAM", steam_file)
    monkeypatch.setattr(steam, "load_steam_games", lambda path: SimpleNamespace(games=games))
    monkeypatch.setattr(steam, "match_items", lambda *args, **kwargs: matches)
    cache = tmp_path / "steam_matching.json"
    steam_matching.main(["--cache", str(cache)])
    result = load_result(cache)
    command = f".venv/bin/python -m experiments.steam_matching --cache {cache}"
    check(result, steam_matching.CACHE, command)
    positives = sum(1 for a in truth if a)
    assert len(result["rows"]) == len(steam_matching.THRESHOLDS)
    assert {
        (r[f"matched (of {len(labelled)})"], r["precision"], r["recall"]) for r in result["rows"]
    } == {(str(positives), "1.000", "1.000")}
    assert "**0.88** (default)" in [r["threshold"] for r in result["rows"]]
    assert result["notes"][1] == (
        f"The labelled sample (`experiments/steam_labels.csv`): {len(labelled)} items, "
        f"{positives} of them with a Steam game."
    )
    share = sum(1 for a in truth if a) / len(truth)
    assert result["notes"][2].endswith(f"threshold 0.88: {share:.1%}.")
