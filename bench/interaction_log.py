"""Benchmark: parsing a large interaction log streams; peak memory against loading it whole.

Generates a log of N events (default 10 M; string user and item ids as the Amazon dump has them,
epoch-second timestamps, no titles) in a scratch folder, then measures, each in a fresh process
under /usr/bin/time: our parser (``parse_interaction_log``: record batches, three numbers per
event kept), and the reference a first version would write, ``pandas.read_csv`` of the whole
file followed by a sort. Prints the file size, wall seconds, peak RSS and their ratios, and keeps
them in bench/results/interaction_log.json (``--cache``) with the command, commit, machine and date,
where ``python -m experiments.report`` reads them.

    .venv/bin/python -m bench.interaction_log [--events 10000000] [--scratch /tmp/log-bench]
        [--cache PATH]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import TypedDict

import numpy as np
import pandas as pd

from recsys_pipeline.monitoring.provenance import REPO, command_line, save_result

CACHE = REPO / "bench" / "results" / "interaction_log.json"

OURS = """
import sys
from pathlib import Path
from recsys_pipeline.data.interaction_log import parse_interaction_log
parsed = parse_interaction_log(Path(sys.argv[1]))
print(len(parsed.histories), parsed.counts)
"""
WHOLE = """
import sys
import pandas as pd
frame = pd.read_csv(sys.argv[1], dtype=str)
frame["timestamp"] = pd.to_numeric(frame["timestamp"])
frame = frame.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
print(frame["user_id"].nunique())
"""


def generate(path: Path, events: int, users: int, items: int) -> None:
    rng = np.random.default_rng(0)
    chunk = 1_000_000
    with path.open("w") as handle:
        handle.write("user_id,item_id,timestamp\n")
        for start in range(0, events, chunk):
            n = min(chunk, events - start)
            frame = pd.DataFrame(
                {
                    "user_id": [f"A{u:013d}" for u in rng.integers(0, users, n)],
                    "item_id": [f"B{i:09d}" for i in rng.zipf(1.3, n) % items],
                    "timestamp": rng.integers(1_000_000_000, 1_600_000_000, n),
                }
            )
            frame.to_csv(handle, header=False, index=False)


def measure(code: str, path: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS GiB, stdout) of ``code`` in a fresh process."""
    done = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-c", code, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", done.stderr)
    parts = [float(p) for p in wall.group(1).split(":")]
    seconds = parts[-1] + 60 * parts[-2] + (3600 * parts[-3] if len(parts) == 3 else 0)
    return seconds, rss / 2**20, done.stdout.strip()


class Run(TypedDict):
    seconds: float  # wall
    peak_rss_gib: float


class Measurement(TypedDict):
    events: int
    users: int
    items: int
    file_gib: float
    ours: Run  # parse_interaction_log
    whole: Run  # pandas.read_csv of the whole file, then a sort


def cache_rows(measured: Measurement) -> list[dict[str, str]]:
    """The cached table: each parser's wall seconds and peak RSS, absolute and per file size."""
    parsers = {
        "ours (`parse_interaction_log`, record batches)": measured["ours"],
        "reference: `pandas.read_csv` of the whole file, then a sort": measured["whole"],
    }
    return [
        {
            "parser": name,
            "seconds": f"{run['seconds']:.0f}",
            "peak RSS GiB": f"{run['peak_rss_gib']:.2f}",
            "RSS / file size": f"{run['peak_rss_gib'] / measured['file_gib']:.2f}",
        }
        for name, run in parsers.items()
    ]


def cache_notes(measured: Measurement) -> list[str]:
    """What was parsed, and the ratios of the two parsers."""
    ours, whole = measured["ours"], measured["whole"]
    return [
        f"A generated log of {measured['events']:,} events ({measured['users']:,} users, "
        f"{measured['items']:,} items; {measured['file_gib']:.2f} GiB), each parser in a fresh "
        "process under /usr/bin/time.",
        f"ours / reference: {ours['peak_rss_gib'] / whole['peak_rss_gib']:.2f}× peak RSS, "
        f"{ours['seconds'] / whole['seconds']:.2f}× time.",
    ]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/log-bench"))
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the figures are kept")
    args = parser.parse_args(argv)
    args.scratch.mkdir(parents=True, exist_ok=True)
    path = args.scratch / f"log-{args.events}.csv"
    if not path.is_file():
        generate(path, args.events, args.users, args.items)
    size = path.stat().st_size / 2**30
    ours = measure(OURS, path)
    whole = measure(WHOLE, path)
    print(f"{args.events:,} events, {size:.2f} GiB file; ours: {ours[2]}")
    print("| parser | seconds | peak RSS GiB | RSS / file size |")
    print("|---|---|---|---|")
    for name, (seconds, rss, _) in (("ours, streaming", ours), ("pandas read_csv, whole", whole)):
        print(f"| {name} | {seconds:.0f} | {rss:.2f} | {rss / size:.2f} |")
    print(f"ours / whole: {ours[1] / whole[1]:.2f}x peak RSS, {ours[0] / whole[0]:.2f}x time")
    measured = Measurement(
        events=args.events,
        users=args.users,
        items=args.items,
        file_gib=size,
        ours=Run(seconds=ours[0], peak_rss_gib=ours[1]),
        whole=Run(seconds=whole[0], peak_rss_gib=whole[1]),
    )
    command = command_line("bench.interaction_log", argv)
    save_result(args.cache, command, cache_rows(measured), notes=cache_notes(measured))
    print(f"kept in {args.cache}")


if __name__ == "__main__":
    main()
