"""Benchmark: one very long id in an interaction log costs its own length, not every event's.

Generates a log of N events (default 1 M; Amazon-like string ids, epoch seconds) and a copy in
which one event's item id is a 10 kB string (real catalogs have URL, UUID-list and JSON-key ids),
then parses each in a fresh process under /usr/bin/time (``parse_interaction_log``) and prints the
peak RSS and seconds of both and their ratio: the log without the long id is the reference. With
fixed-width unicode ids, every event would have cost the width of the longest id (a 1.9 MB log
with one such id peaked at 1.5 GB, 270 MB without it).

The figures are kept in bench/results/long_ids.json with the command, commit and machine;
``--table-only`` reprints them.

    .venv/bin/python -m bench.long_ids [--events 1000000] [--id-bytes 10000] [--table-only]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench.interaction_log import OURS, generate, measure
from recsys_pipeline.monitoring.provenance import REPO, machine, save_result

RESULT = REPO / "bench" / "results" / "long_ids.json"


def with_long_id(source: Path, target: Path, id_bytes: int) -> None:
    """``source`` with the item id of its first event replaced by an id of ``id_bytes``."""
    with source.open() as reading, target.open("w") as writing:
        writing.write(reading.readline())  # the header
        user, _, timestamp = reading.readline().rstrip("\n").split(",")
        writing.write(f"{user},{'x' * id_bytes},{timestamp}\n")
        while chunk := reading.read(1 << 24):
            writing.write(chunk)


def run(events: int, id_bytes: int, scratch: Path) -> dict:
    scratch.mkdir(parents=True, exist_ok=True)
    plain = scratch / f"log-{events}.csv"
    if not plain.is_file():
        generate(plain, events, users=max(events // 10, 1), items=max(events // 50, 1))
    long = scratch / f"log-{events}-long-id-{id_bytes}.csv"
    with_long_id(plain, long, id_bytes)
    rows = {}
    for name, path in (("without the long id (reference)", plain), ("with one long id", long)):
        seconds, rss, _ = measure(OURS, path)
        rows[name] = {"seconds": seconds, "peak_rss_gib": rss, "mib": path.stat().st_size / 2**20}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    command = f".venv/bin/python -m bench.long_ids --events {events} --id-bytes {id_bytes}"
    return {"command": command, "commit": commit, "machine": machine(), "rows": rows}


def table(result: dict) -> list[str]:
    rows = result["rows"]
    lines = [
        f"`{result['command']}` at {result['commit']} on {result['machine']}",
        "| log | file MiB | seconds | peak RSS GiB |",
        "|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['mib']:.0f} | {row['seconds']:.1f} | {row['peak_rss_gib']:.3f} |"
        )
    reference, long = rows.values()
    lines.append(
        f"with / without the long id: {long['peak_rss_gib'] / reference['peak_rss_gib']:.2f}x "
        f"peak RSS, {long['seconds'] / reference['seconds']:.2f}x time"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--id-bytes", type=int, default=10_000)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/long-id-bench"))
    parser.add_argument("--table-only", action="store_true", help="reprint the cached result")
    args = parser.parse_args()
    if args.table_only:
        if not RESULT.is_file():
            sys.exit(f"no cached result at {RESULT}: run without --table-only first")
        result = json.loads(RESULT.read_text())
    else:
        result = run(args.events, args.id_bytes, args.scratch)
        command = (
            f".venv/bin/python -m bench.long_ids --events {args.events} --id-bytes {args.id_bytes}"
        )
        result = save_result(RESULT, command, result["rows"])
    print("\n".join(table(result)))


if __name__ == "__main__":
    main()
