"""Benchmark: the online API under load on 127.0.0.1, against a plain in-process call of the same
model and index, in one run.

Starts `python -m recsys_pipeline.serving` over an artifacts folder built by `make run` (or by
bench/incremental.py), sends a bounded number of requests from a thread pool at concurrency 1, 8
and 32 — single histories drawn from the real length distribution, then batches of 64 — and
prints requests/s, recommendations/s and p50/p95/p99 latency, and the ratio to the in-process
call (the HTTP layer's overhead). Two load generators where wrk is installed (Debian's `wrk`):
Python threads (``--requests`` each), and wrk (C, ``--seconds`` each), which leaves the cores to
the service; the batches go through the last of them. Only 127.0.0.1 is ever contacted.

    .venv/bin/python -m bench.serving_load --data-dir data [--requests 2000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from recsys_pipeline.monitoring.provenance import REPO


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--seconds", type=int, default=15, help="per wrk measurement")
    args = parser.parse_args()
    artifacts = args.data_dir.resolve() / "artifacts"

    import torch

    from recsys_pipeline.data.artifacts import ArtifactStore
    from recsys_pipeline.serving.bundle import load_bundle, published_version

    torch.set_num_threads(1)  # as the service runs
    bundle = load_bundle(ArtifactStore(artifacts), published_version(artifacts))
    rng = np.random.default_rng(0)
    users = list(bundle.histories)
    histories = [bundle.histories[u].tolist() for u in rng.choice(users, args.requests)]
    singles = [{"history": h, "k": 10} for h in histories]
    batches = [
        {"requests": [{"history": h} for h in rng.choice(np.array(histories, dtype=object), 64)]}
        for _ in range(args.batches)
    ]

    started = time.perf_counter()
    for h in histories[:500]:
        bundle.recommend([h], 10, True)
    direct_single = (time.perf_counter() - started) / 500 * 1000
    started = time.perf_counter()
    for body in batches[:20]:
        bundle.recommend([r["history"] for r in body["requests"]], 10, True)
    direct_batch = (time.perf_counter() - started) / 20

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
        print(
            f"in-process call: single {direct_single:.2f} ms, batch of 64 {direct_batch * 1000:.1f} ms"
        )
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
                print(
                    f"| /recommend ({client}) | {concurrency} | {r['requests_per_s']:.0f} | "
                    f"{r['requests_per_s']:.0f} | {r['p50']:.1f} | {r['p95']:.1f} | "
                    f"{r['p99']:.1f} | {r['p50'] / direct_single:.1f}x p50 |",
                    flush=True,
                )
        for concurrency in (1, 8, 32):
            r = clients[-1][1](port, "/recommend/batch", batches, concurrency)
            print(
                f"| /recommend/batch (64), {clients[-1][0]} | {concurrency} | {r['requests_per_s']:.1f} | "
                f"{r['requests_per_s'] * 64:.0f} | {r['p50']:.0f} | {r['p95']:.0f} | {r['p99']:.0f} | "
                f"{r['p50'] / (direct_batch * 1000):.1f}x p50 |",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
