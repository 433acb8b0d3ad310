"""Benchmark: texts per second of the CPU text encoder by batch size and by precision, on the
texts the pipeline encodes (Steam game names and catalog titles, platform words stripped as
steam_enrichment does).

Each batch size encodes the same sample in the pipeline's precision; the sizes run in turn, twice,
so that the machine's drift falls on all of them alike. The reference is 256, the batch the
pipeline used before 64. Then, at the pipeline's batch, float32 and bfloat16 in turn, twice: their
texts/s, and how close bf16's vectors are to float32's (cosine, and whether each text keeps its
nearest neighbour in the sample), which is what decides whether bf16 may be this CPU's default
(``models/precision.py``). The figures are kept in bench/results/encoder_batch.json (``--cache``)
with the command, commit, machine, date and threads, where ``python -m experiments.report`` reads
them.

    .venv/bin/python -m bench.encoder_batch [--texts 4000] [--threads 2] [--cache PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TypedDict

import numpy as np

from recsys_pipeline.monitoring.provenance import REPO, command_line, save_result

REFERENCE = 256
SIZES = (REFERENCE, 16, 32, 64, 128)
CACHE = REPO / "bench" / "results" / "encoder_batch.json"


class Precisions(TypedDict):
    batch: int
    texts_per_s: dict[str, float]  # by precision: float32, bfloat16
    cosine_mean: float  # of each text's bf16 vector to its float32 one
    cosine_min: float
    neighbour_kept: float  # the share of texts whose nearest neighbour bf16 keeps


class Measurement(TypedDict):
    texts: int
    model: str
    precision: str  # the pipeline's on this CPU, the batch sizes' precision
    pipeline_batch: int
    texts_per_s: dict[int, float]  # by batch size
    max_diff: dict[int, float]  # by batch size: max |Δ| to the reference size's vectors
    precisions: Precisions


def short_exponent(value: float) -> str:
    """``1.7e-7`` for 1.7e-07 (the cached table's style)."""
    mantissa, _, power = f"{value:.1e}".partition("e")
    return f"{mantissa}e{int(power)}" if value else "0"


def cache_rows(measured: Measurement) -> dict[str, list[dict[str, str]]]:
    """The cached tables: texts/s by batch size against the reference size, and by precision
    against float32 at the pipeline's batch."""
    by_batch = []
    reference = measured["texts_per_s"][REFERENCE]
    for size, rate in measured["texts_per_s"].items():
        label = f"{size} (the pipeline's)" if size == measured["pipeline_batch"] else str(size)
        diff = "–" if size == REFERENCE else short_exponent(measured["max_diff"][size])
        by_batch.append(
            {
                "batch": label,
                "texts/s": f"{rate:,.0f}",
                f"ratio to {REFERENCE}": f"{rate / reference:.2f}×",
                f"max |Δ| to {REFERENCE}'s vectors": diff,
            }
        )
    precisions = measured["precisions"]
    by_precision = [
        {
            "precision": name,
            "texts/s": f"{rate:,.0f}",
            "ratio to float32": f"{rate / precisions['texts_per_s']['float32']:.2f}×",
        }
        for name, rate in precisions["texts_per_s"].items()
    ]
    return {
        f"the text encoder's batch size, {measured['texts']:,} of the pipeline's texts in its "
        f"precision ({measured['precision']}), each size twice (mean)": by_batch,
        f"bf16 against float32 {measured['model']}, batch {precisions['batch']}, each precision "
        "twice (mean)": by_precision,
    }


def cache_notes(measured: Measurement) -> list[str]:
    """How close bf16's vectors are to float32's."""
    precisions = measured["precisions"]
    return [
        f"bf16 against float32: cosine mean {precisions['cosine_mean']:.4f}, min "
        f"{precisions['cosine_min']:.4f}; the nearest neighbour kept for "
        f"{precisions['neighbour_kept']:.1%} of the texts."
    ]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the figures are kept")
    args = parser.parse_args(argv)
    import torch

    from experiments.common import real_data
    from recsys_pipeline.enrichment.steam import load_steam_games
    from recsys_pipeline.enrichment.text_vectors import (
        BUNDLED_MODEL,
        CPU_ENCODE_BATCH,
        load_encoder,
    )
    from recsys_pipeline.enrichment.titles import strip_platform
    from recsys_pipeline.models.precision import fast_dtype
    from recsys_pipeline.settings import SHARED_STEAM

    torch.set_num_threads(args.threads)
    _, _, titles = real_data()
    names = load_steam_games(SHARED_STEAM).games["name"]
    texts = [strip_platform(t) for t in [*names.tolist(), *titles]]
    sample = np.random.default_rng(0).choice(len(texts), args.texts, replace=False)
    texts = [texts[i] for i in sample]
    model = load_encoder(BUNDLED_MODEL)  # as the pipeline loads it, in its precision
    precision = str(fast_dtype("cpu")).removeprefix("torch.")
    print(f"pipeline precision on this CPU: {fast_dtype('cpu')}")
    model.encode(texts[:200], batch_size=32)  # warm-up: the first batches allocate

    seconds: dict[int, list[float]] = {size: [] for size in SIZES}
    vectors: dict[int, np.ndarray] = {}
    for _ in range(2):
        for size in SIZES:
            started = time.perf_counter()
            vectors[size] = model.encode(texts, batch_size=size, normalize_embeddings=True)
            seconds[size].append(time.perf_counter() - started)
    print(f"{len(texts)} texts, {args.threads} threads, each size twice (mean)")
    print("| batch | texts/s | ratio to 256 | max |Δ| to 256's vectors |")
    print("|---|---|---|---|")
    reference = np.mean(seconds[REFERENCE])
    rates, diffs = {}, {}
    for size in SIZES:
        rate = len(texts) / np.mean(seconds[size])
        diff = float(np.abs(vectors[size] - vectors[REFERENCE]).max())
        rates[size], diffs[size] = float(rate), diff
        print(f"| {size} | {rate:.0f} | {reference / np.mean(seconds[size]):.2f}x | {diff:.1e} |")
    measured = Measurement(
        texts=len(texts),
        model=BUNDLED_MODEL.removeprefix("bundled:"),
        precision=precision,
        pipeline_batch=CPU_ENCODE_BATCH,
        texts_per_s=rates,
        max_diff=diffs,
        precisions=compare_precisions(texts, CPU_ENCODE_BATCH),
    )
    command = command_line("bench.encoder_batch", argv)
    save_result(
        args.cache,
        command,
        cache_rows(measured),
        notes=cache_notes(measured),
        threads=args.threads,
    )
    print(f"kept in {args.cache}")


def compare_precisions(texts: list[str], batch: int) -> Precisions:
    import torch

    from recsys_pipeline.enrichment.text_vectors import BUNDLED_MODEL, load_encoder

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    models = {name: load_encoder(BUNDLED_MODEL, dtype=dtype) for name, dtype in dtypes.items()}
    for model in models.values():
        model.encode(texts[:200], batch_size=32)
    seconds: dict[str, list[float]] = {name: [] for name in models}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(2):
        for name, model in models.items():
            started = time.perf_counter()
            encoded = model.encode(texts, batch_size=batch, normalize_embeddings=True)
            seconds[name].append(time.perf_counter() - started)
            vectors[name] = np.asarray(encoded, dtype=np.float32)
    exact, half = vectors["float32"], vectors["bfloat16"]
    cosine = (exact * half).sum(1) / np.linalg.norm(half, axis=1)

    def nearest(v: np.ndarray) -> np.ndarray:
        similarity = v @ v.T
        np.fill_diagonal(similarity, -np.inf)
        return similarity.argmax(1)

    agreement = float((nearest(exact) == nearest(half)).mean())
    rate = {name: len(texts) / np.mean(s) for name, s in seconds.items()}
    print(f"\nbatch {batch}, each precision twice (mean)")
    print("| precision | texts/s | ratio to float32 |")
    print("|---|---|---|")
    for name in models:
        print(f"| {name} | {rate[name]:.0f} | {rate[name] / rate['float32']:.2f}x |")
    print(
        f"bf16 against float32: cosine mean {cosine.mean():.4f}, min {cosine.min():.4f}; "
        f"nearest neighbour kept for {agreement:.1%} of the texts"
    )
    return Precisions(
        batch=batch,
        texts_per_s={name: float(r) for name, r in rate.items()},
        cosine_mean=float(cosine.mean()),
        cosine_min=float(cosine.min()),
        neighbour_kept=agreement,
    )


if __name__ == "__main__":
    main()
