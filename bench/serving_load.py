"""Benchmark: the online API under load on 127.0.0.1, against a plain in-process call of the same
model and index, in one run.

Starts `python -m recsys_pipeline.serving` over an artifacts folder built by `make run` (or by
bench/incremental.py), sends a bounded number of requests from a thread pool at concurrency 1, 8
and 32 — single histories drawn from the real length distribution, then batches of 64 — and
prints requests/s, recommendations/s and p50/p95/p99 latency, and the ratio to the in-process
call (the HTTP layer's overhead). Two load generators where wrk is installed (Debian's `wrk`):
Python threads (``--requests`` each), and wrk (C, ``--seconds`` each), which leaves the cores to
the service; the batches go through the last of them. Only 127.0.0.1 is ever contacted. The
in-process reference is the median of its calls' times.

The tables are kept in bench/results/serving_load.json with the command, commit, machine and date
(``--cache`` writes them elsewhere), which docs/results.md prints.

    .venv/bin/python -m bench.serving_load --data-dir data [--requests 2000] [--cache PATH]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypedDict

import numpy as np

from recsys_pipeline.monitoring.provenance import REPO, command_line, save_result

CACHE = REPO / "bench" / "results" / "serving_load.json"
BATCH = 64  # histories a /recommend/batch request holds
THREADS = 1  # torch threads of the in-process call, as the service runs


class Load(TypedDict):
    """One load measurement: ``requests_per_s`` and latency percentiles in ms."""

    endpoint: str  # /recommend or /recommend/batch
    client: str  # python threads or wrk
    concurrency: int
    requests_per_s: float
    p50: float
    p95: float
    p99: float


class Measurement(TypedDict):
    requests: int  # single histories, each sent once per python-threads measurement
    batches: int
    wrk_seconds: int | None  # each wrk measurement's length; None: wrk not installed
    version: str  # the served artifact version
    in_process_single_ms: float  # p50 of the same call in process
    in_process_batch_ms: float
    loads: list[Load]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(port: int, path: str, bodies: list[dict], concurrency: int) -> dict:
    """Send ``bodies`` to 127.0.0.1:``port``, ``concurrency`` at a time, one keep-alive
    connection per thread; latency percentiles in ms and requests per second."""
    local = threading.local()

    def post(body: dict) -> float:
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        started = time.perf_counter()
        local.connection.request(
            "POST", path, json.dumps(body), {"Content-Type": "application/json"}
        )
        response = local.connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {payload[:300]!r}")
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(post, bodies))
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "requests_per_s": len(bodies) / wall,
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
    }


WRK_SCRIPT = """
bodies = {}
for line in io.lines("%s") do bodies[#bodies + 1] = line end
counter = 0
request = function()
  counter = counter %% #bodies + 1
  return wrk.format("POST", "%s", {["Content-Type"] = "application/json"}, bodies[counter])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%f %%f %%f %%f %%d\\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
"""


def load_wrk(port: int, path: str, bodies: list[dict], concurrency: int, seconds: int) -> dict:
    """The same measurement with wrk (one thread, ``concurrency`` connections): a load
    generator in C, so the two cores go to the service rather than to a Python client."""
    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "bodies.jsonl"
        lines.write_text("\n".join(json.dumps(b) for b in bodies) + "\n")
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT % (lines, path))
        done = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{concurrency}",
                f"-d{seconds}s",
                "--timeout",
                "60s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
        )
    values = next(line for line in done.stdout.splitlines() if line.startswith("RESULT")).split()
    rate, p50, p95, p99, errors = (float(v) for v in values[1:])
    if errors:
        raise RuntimeError(f"{errors:.0f} failed requests:\n{done.stdout}")
    return {"requests_per_s": rate, "p50": p50, "p95": p95, "p99": p99}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--seconds", type=int, default=15, help="per wrk measurement")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the tables are kept")
    args = parser.parse_args(argv)
    artifacts = args.data_dir.resolve() / "artifacts"

    import torch

    from recsys_pipeline.data.artifacts import ArtifactStore
    from recsys_pipeline.serving.bundle import load_bundle, published_version

    torch.set_num_threads(THREADS)
    version = published_version(artifacts)
    bundle = load_bundle(ArtifactStore(artifacts), version)
    rng = np.random.default_rng(0)
    users = list(bundle.histories)
    histories = [bundle.histories[u].tolist() for u in rng.choice(users, args.requests)]
    singles = [{"history": h, "k": 10} for h in histories]
    batches = [
        {"requests": [{"history": h} for h in rng.choice(np.array(histories, dtype=object), BATCH)]}
        for _ in range(args.batches)
    ]

    def in_process_ms(chosen: list) -> float:
        started = time.perf_counter()
        bundle.recommend(chosen, 10, True)
        return (time.perf_counter() - started) * 1000

    direct_single = statistics.median(in_process_ms([h]) for h in histories[:500])
    direct_batch = statistics.median(
        in_process_ms([r["history"] for r in body["requests"]]) for body in batches[:20]
    )
    loads: list[Load] = []

    port = free_port()
    env = {**os.environ, "RECSYS_DATA_DIR": str(args.data_dir.resolve()), "PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "recsys_pipeline.serving"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit("the service did not come up")
            time.sleep(0.5)
        load(port, "/recommend", singles[:100], 4)  # warm-up
        print(f"in-process call: single {direct_single:.2f} ms, batch of 64 {direct_batch:.1f} ms")
        print(
            "| endpoint | concurrency | requests/s | recommendations/s | p50 ms | p95 ms | p99 ms | vs in-process |"
        )
        print("|---|---|---|---|---|---|---|---|")
        clients = [("python threads", load)]
        if shutil.which("wrk"):
            clients.append(("wrk", lambda p, path, b, c: load_wrk(p, path, b, c, args.seconds)))
        for client, run in clients:
            for concurrency in (1, 8, 32):
                r = run(port, "/recommend", singles, concurrency)
                loads.append(
                    {"endpoint": "/recommend", "client": client, "concurrency": concurrency, **r}
                )
                print(
                    f"| /recommend ({client}) | {concurrency} | {r['requests_per_s']:.0f} | "
                    f"{r['requests_per_s']:.0f} | {r['p50']:.1f} | {r['p95']:.1f} | "
                    f"{r['p99']:.1f} | {r['p50'] / direct_single:.1f}x p50 |",
                    flush=True,
                )
        for concurrency in (1, 8, 32):
            r = clients[-1][1](port, "/recommend/batch", batches, concurrency)
            loads.append(
                {
                    "endpoint": "/recommend/batch",
                    "client": clients[-1][0],
                    "concurrency": concurrency,
                    **r,
                }
            )
            print(
                f"| /recommend/batch (64), {clients[-1][0]} | {concurrency} | {r['requests_per_s']:.1f} | "
                f"{r['requests_per_s'] * 64:.0f} | {r['p50']:.0f} | {r['p95']:.0f} | {r['p99']:.0f} | "
                f"{r['p50'] / direct_batch:.1f}x p50 |",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    measured: Measurement = {
        "requests": args.requests,
        "batches": args.batches,
        "wrk_seconds": args.seconds if len(clients) > 1 else None,
        "version": str(version),
        "in_process_single_ms": direct_single,
        "in_process_batch_ms": direct_batch,
        "loads": loads,
    }
    arguments = sys.argv[1:] if argv is None else argv
    command = command_line("bench.serving_load", arguments)
    save_result(args.cache, command, cache_rows(measured), threads=THREADS)


def cache_rows(measured: Measurement) -> dict[str, list[dict[str, str]]]:
    """The cached tables (docs/results.md prints them): the printed table, by caption, and the
    in-process reference of its ratios."""
    rows = []
    for r in measured["loads"]:
        single, rate = r["endpoint"] == "/recommend", r["requests_per_s"]
        reference = measured["in_process_single_ms"] if single else measured["in_process_batch_ms"]
        latency = ".1f" if single else ".0f"
        rows.append(
            {
                "endpoint": f"/recommend ({r['client']})"
                if single
                else f"/recommend/batch ({BATCH}), {r['client']}",
                "concurrency": str(r["concurrency"]),
                "requests/s": f"{rate:.0f}" if single else f"{rate:.1f}",
                "recommendations/s": f"{rate if single else rate * BATCH:.0f}",
                "p50 ms": f"{r['p50']:{latency}}",
                "p95 ms": f"{r['p95']:{latency}}",
                "p99 ms": f"{r['p99']:{latency}}",
                "vs in-process": f"{r['p50'] / reference:.1f}x p50",
            }
        )
    wrk = (
        f"; wrk cycles through them for {measured['wrk_seconds']} s a row"
        if measured["wrk_seconds"]
        else ""
    )
    caption = (
        f"the service (`python -m recsys_pipeline.serving`, 127.0.0.1) serving artifact version "
        f"{measured['version']}: {measured['requests']:,} single histories drawn from its users "
        f"(python threads send each once a row{wrk}), then {measured['batches']} batches of "
        f"{BATCH} of them"
    )
    return {
        caption: rows,
        "the same call in process (the ratios' reference)": [
            {
                "call": "single history",
                "p50 ms, this run": f"{measured['in_process_single_ms']:.2f}",
            },
            {
                "call": f"batch of {BATCH}",
                "p50 ms, this run": f"{measured['in_process_batch_ms']:.1f}",
            },
        ],
    }


if __name__ == "__main__":
    main()
