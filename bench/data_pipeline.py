"""Benchmark: the data assets (raw_csv, sequences, tokenizer and their checks) on the real data.

Runs the real CLI (`dagster asset materialize`, multiprocess executor: every step its own process)
on a fresh data dir and reports wall time and the peak RSS of the largest process. As a reference
in the same script it times the original project's way of reading the CSV (pandas.read_csv +
ast.literal_eval on both list columns) against our streaming parser.

    .venv/bin/python -m bench.data_pipeline [path/to/sequences.csv]
"""

from __future__ import annotations

import ast
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recsys_pipeline.monitoring.provenance import REPO
from recsys_pipeline.settings import SHARED_SEQUENCES as DEFAULT_CSV

SELECTION = "raw_csv,sequences,tokenizer"


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


def main() -> None:
    csv_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CSV
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


if __name__ == "__main__":
    main()
