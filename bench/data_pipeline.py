"""Benchmark: the data assets (raw_csv, sequences, tokenizer and their checks) on the real data.

Runs the real CLI (`dagster asset materialize`, multiprocess executor: every step its own process)
on a fresh data dir and reports wall time and the peak RSS of the largest process. As a reference
in the same script it times the original project's way of reading the CSV (pandas.read_csv +
ast.literal_eval on both list columns) against our streaming parser.

The figures are kept in bench/results/data_pipeline.json (``--cache``) with the command, commit,
machine and date, where ``python -m experiments.report`` reads them.

    .venv/bin/python -m bench.data_pipeline [path/to/sequences.csv] [--cache PATH]
"""

from __future__ import annotations

import argparse
import ast
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TypedDict

from recsys_pipeline.monitoring.provenance import REPO, command_line, save_result
from recsys_pipeline.settings import SHARED_SEQUENCES as DEFAULT_CSV

SELECTION = "raw_csv,sequences,tokenizer"
CACHE = REPO / "bench" / "results" / "data_pipeline.json"
BAR_SECONDS, BAR_GIB = 30, 2  # the CLI's wall time and its largest process's peak RSS


class Measurement(TypedDict):
    cli_seconds: float  # the CLI's wall time
    peak_rss_gib: float  # its largest process
    reference_parse_seconds: float  # pandas.read_csv + ast.literal_eval
    our_parse_seconds: float  # parse_sequences_csv


def cache_rows(measured: Measurement) -> list[dict[str, str]]:
    """The cached table: measure, value and the bar it has to stay under."""
    reference, ours = measured["reference_parse_seconds"], measured["our_parse_seconds"]
    return [
        {
            "measure": f"CLI wall, {SELECTION.replace(',', ' + ')} and their checks (multiprocess)",
            "value": f"{measured['cli_seconds']:.1f} s",
            "bar": f"{BAR_SECONDS} s",
        },
        {
            "measure": "peak RSS of the largest process",
            "value": f"{measured['peak_rss_gib']:.2f} GiB",
            "bar": f"{BAR_GIB} GiB",
        },
        {
            "measure": "parse: the original's `pandas.read_csv` + `literal_eval` (reference)",
            "value": f"{reference:.2f} s",
            "bar": "–",
        },
        {
            "measure": "parse: our streaming, validating parser",
            "value": f"{ours:.2f} s ({reference / ours:.2f}× the reference speed)",
            "bar": "–",
        },
    ]


def reference_parse(path: Path) -> float:
    import pandas as pd

    started = time.perf_counter()
    frame = pd.read_csv(path)
    frame["history_item_id"] = frame["history_item_id"].apply(ast.literal_eval)
    frame["history_item_title"] = frame["history_item_title"].apply(ast.literal_eval)
    return time.perf_counter() - started


def our_parse(path: Path) -> float:
    from recsys_pipeline.data.input_csv import parse_sequences_csv

    started = time.perf_counter()
    parse_sequences_csv(path)
    return time.perf_counter() - started


def run_cli(csv_path: Path) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "RECSYS_DATA_DIR": f"{tmp}/data",
            "RECSYS_RAW_CSV": str(csv_path),
            "RECSYS_PROFILE": "cpu",
            "DAGSTER_HOME": tmp,
        }
        Path(tmp, "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
        dagster = Path(sys.executable).with_name("dagster")
        started = time.perf_counter()
        done = subprocess.run(
            [
                str(dagster),
                "asset",
                "materialize",
                "-m",
                "recsys_pipeline.definitions",
                "--select",
                SELECTION,
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(done.stderr[-3000:])
    # ru_maxrss of waited-for descendants: the largest single process of the run (KiB on Linux)
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return wall, peak_gib


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser()
    parser.add_argument("csv", nargs="?", type=Path, default=DEFAULT_CSV, help="the input CSV")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the figures are kept")
    args = parser.parse_args(argv)
    csv_path = args.csv
    if not csv_path.is_file():
        sys.exit(f"no input at {csv_path}; pass a CSV path")
    wall, peak = run_cli(csv_path)
    reference, ours = reference_parse(csv_path), our_parse(csv_path)
    print(f"input: {csv_path}")
    print("| measure | value |")
    print("|---|---|")
    print(f"| CLI wall, 3 assets + their checks (multiprocess) | {wall:.1f} s (bar: 30 s) |")
    print(f"| peak RSS of the largest process | {peak:.2f} GiB (bar: 2 GiB) |")
    print(f"| parse: pandas + literal_eval (reference) | {reference:.2f} s |")
    print(
        f"| parse: streaming validator (ours) | {ours:.2f} s ({reference / ours:.2f}x the reference speed) |"
    )
    measured = Measurement(
        cli_seconds=wall,
        peak_rss_gib=peak,
        reference_parse_seconds=reference,
        our_parse_seconds=ours,
    )
    command = command_line("bench.data_pipeline", argv)
    save_result(args.cache, command, cache_rows(measured))
    print(f"kept in {args.cache}")


if __name__ == "__main__":
    main()
