"""The model, serving and incremental benchmarks write their caches (bench/model_throughput.py,
bench/serving_load.py, bench/incremental.py, experiments/recbole_baseline.py --throughput): rows
built from a small fake measurement, saved through save_result, are a cache that load_result
accepts, whose tables have the committed cache's columns, and that experiments.report renders.
No benchmark runs here: where main() is cheap around its measurement, the measurement is faked
and main() writes to a temporary --cache."""

from __future__ import annotations

from pathlib import Path

from experiments import report
from recsys_pipeline.monitoring.provenance import load_result, save_result

# columns of a committed, backfilled table that no command measures (copied from other runs)
UNMEASURED = {"p50 ms, quieter runs"}


def tables_of(rows: list | dict) -> list[list[dict]]:
    return list(rows.values()) if isinstance(rows, dict) else [rows]


def columns(table: list[dict]) -> list[str]:
    """A table's columns as experiments.report orders them, less the rows' own provenance."""
    seen = dict.fromkeys(column for row in table for column in row)
    return [c for c in seen if c not in report.ROW_PROVENANCE and c not in UNMEASURED]


def check_cache(path: Path, committed: Path, command: str, threads: int | None = None) -> None:
    """``path`` loads, holds this measurement only, has the committed cache's tables (the first
    ones: a backfilled cache may hold more, copied from other runs) and renders."""
    result = load_result(path)
    assert result["command"] == command
    assert result.get("threads") == threads
    assert "source" not in result and "notes" not in result
    ours, theirs = tables_of(result["rows"]), tables_of(load_result(committed)["rows"])
    assert 0 < len(ours) <= len(theirs)
    for mine, before in zip(ours, theirs, strict=False):
        assert mine and columns(mine) == columns(before)
        assert all(isinstance(v, str) for row in mine for v in row.values())
    lines = report.tables(dict(result))
    for table in ours:
        header = "| " + " | ".join(report.cell(c) for c in columns(table)) + " |"
        assert header in lines
    source = [line for line in lines if line.startswith(report.SOURCE)]
    assert len(source) == len(ours)
    assert all(line.startswith(f"{report.SOURCE}`{command}` · ") for line in source)
    assert not any("backfilled" in line for line in source)


def test_model_throughput_cache(tmp_path, monkeypatch):
    from bench import model_throughput

    fake: model_throughput.Measurement = {
        "batch_size": 256,
        "timed_steps": 1,
        "threads": 2,
        "real_lengths": True,
        "torch": "2.13.0",
        "variants": {
            name: {"bf16": 21_089.4, "float32": 18_991.0, "everywhere": 2_193.0}
            for name in ("sasrec", "sasrec_rope")
        },
        "output_layer": {
            "positions": 2304,
            "items": 16_863,
            "rates": {
                "ours, bf16": 42_932.0,
                "ours, float32": 30_153.0,
                model_throughput.REFERENCE: 27_746.0,
                "F.linear_cross_entropy, unchunked, float32": 8_986.0,
            },
        },
        "attention": {"sdpa": 18_301.0, "eager": 18_394.0},
    }
    monkeypatch.setattr(model_throughput, "cpu_report", lambda steps: fake)
    cache = tmp_path / "model_throughput.json"
    model_throughput.main(["--steps", "2", "--cache", str(cache)])

    command = f".venv/bin/python -m bench.model_throughput --steps 2 --cache {cache}"
    check_cache(cache, model_throughput.CACHE, command)
    training, layer, attention = tables_of(load_result(cache)["rows"])
    assert training[0] == {
        "variant": "`sasrec`",
        "fused loss, bf16 output layer (the default here)": "21,089",
        "fused loss, float32": "18,991",
        "logits everywhere": "2,193",
        "bf16 / float32": "1.11×",
        "float32 fused / everywhere": "8.66×",
    }
    assert [row["vs `F.linear_cross_entropy` in chunks of 128"] for row in layer] == [
        "1.55×",
        "1.09×",
        "1.00×",
        "0.32×",
    ]
    assert layer[2]["implementation"] == (
        "PyTorch 2.13.0 `F.linear_cross_entropy`, chunks of 128, float32"
    )
    assert [row["tokens/s"] for row in attention] == ["18,301", "18,394"]


def test_serving_load_cache(tmp_path):
    from bench import serving_load

    loads: list[serving_load.Load] = [
        {
            "endpoint": "/recommend",
            "client": client,
            "concurrency": concurrency,
            "requests_per_s": 121.0 * concurrency,
            "p50": 8.04,
            "p95": 11.2,
            "p99": 13.0,
        }
        for client in ("python threads", "wrk")
        for concurrency in (1, 8, 32)
    ]
    loads += [
        {
            "endpoint": "/recommend/batch",
            "client": "wrk",
            "concurrency": concurrency,
            "requests_per_s": 22.94,
            "p50": 45.2,
            "p95": 52.0,
            "p99": 56.0,
        }
        for concurrency in (1, 8, 32)
    ]
    fake: serving_load.Measurement = {
        "requests": 2000,
        "batches": 60,
        "wrk_seconds": 15,
        "version": "v3",
        "in_process_single_ms": 5.09,
        "in_process_batch_ms": 33.8,
        "loads": loads,
    }
    cache = tmp_path / "serving_load.json"
    command = ".venv/bin/python -m bench.serving_load --data-dir /tmp/incremental"
    save_result(cache, command, serving_load.cache_rows(fake), threads=serving_load.THREADS)

    check_cache(cache, serving_load.CACHE, command, threads=1)
    service, in_process = tables_of(load_result(cache)["rows"])
    assert service[0] == {
        "endpoint": "/recommend (python threads)",
        "concurrency": "1",
        "requests/s": "121",
        "recommendations/s": "121",
        "p50 ms": "8.0",
        "p95 ms": "11.2",
        "p99 ms": "13.0",
        "vs in-process": "1.6x p50",
    }
    assert service[-1]["endpoint"] == "/recommend/batch (64), wrk"
    assert (service[-1]["requests/s"], service[-1]["recommendations/s"]) == ("22.9", "1468")
    assert service[-1]["vs in-process"] == "1.3x p50"
    assert in_process == [
        {"call": "single history", "p50 ms, this run": "5.09"},
        {"call": "batch of 64", "p50 ms, this run": "33.8"},
    ]


def incremental_measurement(**changes: object) -> dict:
    downstream = ["item_embeddings", "sft_checkpoint", "dpo_pairs", "faiss_index"]
    return {
        "whole_graph_seconds": 1321.0,
        "same_bytes_requested": [],
        "same_bytes_seconds": 0.83,
        "sft_reused": True,
        "sft_version_before": "abc",
        "sft_version_after": "abc",
        "sft_again_seconds": 10.9,
        "sft_training_seconds": 752.0,
        "appended_requested": ["raw_csv", "sequences", "tokenizer"],
        "appended_decide_seconds": 1.31,
        "appended_run_seconds": 60.2,
        "stale": downstream,
        "not_rebuilt": downstream,
        "stale_run_seconds": 1262.0,
        **changes,
    }


def test_incremental_cache(tmp_path):
    from bench import incremental

    cache = tmp_path / "incremental.json"
    command = ".venv/bin/python -m bench.incremental --scratch /tmp/incremental"
    rows = incremental.cache_rows(incremental.Measurement(**incremental_measurement()))
    save_result(cache, command, rows)

    check_cache(cache, incremental.CACHE, command)
    rows = load_result(cache)["rows"]
    assert [row["seconds"] for row in rows] == [
        "0.8",
        "11 (CLI process) vs 752 training: 69×",
        "60",
        "–",
        "1262 vs 1321",
    ]
    assert rows[0]["what Dagster does"] == "requests nothing"
    assert rows[1]["what Dagster does"] == (
        "a no-op materialization of the same version (`reused: true`)"
    )
    assert rows[2]["what Dagster does"] == (
        "requests raw_csv, sequences, tokenizer (1.3 s to decide); they run in 60 s"
    )
    assert rows[3]["what Dagster does"] == (
        "stale: exactly raw_csv's downstream that those did not rebuild "
        "(item_embeddings, sft_checkpoint, dpo_pairs, faiss_index)"
    )


def test_incremental_rows_say_what_differed():
    from bench import incremental

    rows = incremental.cache_rows(
        incremental.Measurement(
            **incremental_measurement(
                whole_graph_seconds=None,  # --reuse: the whole graph was not timed
                sft_reused=False,
                sft_version_after="def",
                stale=["sft_checkpoint", "faiss_index", "tokenizer"],
            )
        )
    )
    assert rows[1]["what Dagster does"] == "`reused: false`, version abc → def"
    assert rows[3]["what Dagster does"] == (
        "stale: sft_checkpoint, faiss_index, tokenizer; of raw_csv's downstream that those did "
        "not rebuild, not stale: item_embeddings, dpo_pairs; stale besides raw_csv's downstream "
        "that those did not rebuild: tokenizer"
    )
    assert rows[4]["seconds"] == "1262"


def test_recbole_throughput_cache(tmp_path, monkeypatch):
    import experiments.common
    from experiments import recbole_baseline

    def timing(seconds: float, tokens: float, targets: float) -> recbole_baseline.Timing:
        return {
            "epochs": 2,
            "median_epoch_seconds": seconds,
            "input_tokens_per_s": tokens,
            "targets_per_s": targets,
        }

    runs = {
        "ours, before RecBole": timing(27.62, 14_312.0, 12_296.0),
        recbole_baseline.RECBOLE: timing(214.6, 8_392.0, 1_345.0),
        "ours, after RecBole": timing(34.9, 11_306.0, 9_713.0),
    }
    monkeypatch.setattr(experiments.common, "experiment_data", lambda: None)
    monkeypatch.setattr(recbole_baseline, "throughput_only", lambda data, epochs: runs)
    cache = tmp_path / "recbole_throughput.json"
    recbole_baseline.main(["--throughput", "2", "--cache", str(cache)])

    command = f".venv/bin/python -m experiments.recbole_baseline --throughput 2 --cache {cache}"
    check_cache(cache, recbole_baseline.CACHE, command)
    (table,) = tables_of(load_result(cache)["rows"])
    assert table[0] == {
        "trainer": "ours, before RecBole",
        "epochs": "2",
        "s/epoch": "27.6",
        "input tokens/s": "14,312",
        "next-item targets/s": "12,296",
    }
    assert table[-1] == {
        "trainer": "ratio ours / RecBole",
        "epochs": "",
        "s/epoch": "",
        "input tokens/s": "**1.53×**",
        "next-item targets/s": "**8.18×**",
    }


def test_the_cache_option_defaults_to_the_committed_cache(monkeypatch):
    """Without --cache, main() writes the committed cache (save_result faked: nothing written)."""
    import experiments.common
    from bench import model_throughput
    from experiments import recbole_baseline

    written = []
    for script in (model_throughput, recbole_baseline):
        monkeypatch.setattr(script, "save_result", lambda path, *_, **__: written.append(path))
    monkeypatch.setattr(model_throughput, "cpu_report", lambda steps: None)
    monkeypatch.setattr(model_throughput, "cache_rows", lambda measured: {})
    monkeypatch.setattr(experiments.common, "experiment_data", lambda: None)
    monkeypatch.setattr(recbole_baseline, "throughput_only", lambda data, epochs: None)
    monkeypatch.setattr(recbole_baseline, "cache_rows", lambda runs, epochs: {})
    model_throughput.main([])
    recbole_baseline.main(["--throughput", "2"])
    assert written == [model_throughput.CACHE, recbole_baseline.CACHE]
    assert model_throughput.CACHE == report.BENCH / "model_throughput.json"
    assert recbole_baseline.CACHE == report.RESULTS / "recbole_throughput.json"
    from bench import incremental, serving_load

    assert incremental.CACHE == report.BENCH / "incremental.json"
    assert serving_load.CACHE == report.BENCH / "serving_load.json"
