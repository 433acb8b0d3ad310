"""Benchmark: texts per second of the CPU text encoder by batch size and by precision, on the
texts the pipeline encodes (Steam game names and catalog titles, platform words stripped as
steam_enrichment does).

Each batch size encodes the same sample in the pipeline's precision; the sizes run in turn, twice,
so that the machine's drift falls on all of them alike. The reference is 256, the batch the
pipeline used before 64. Then, at the pipeline's batch, float32 and bfloat16 in turn, twice: their
texts/s, and how close bf16's vectors are to float32's (cosine, and whether each text keeps its
nearest neighbour in the sample), which is what decides whether bf16 may be this CPU's default
(``models/precision.py``).

    .venv/bin/python -m bench.encoder_batch [--texts 4000] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

REFERENCE = 256
SIZES = (REFERENCE, 16, 32, 64, 128)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
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
    for size in SIZES:
        rate = len(texts) / np.mean(seconds[size])
        diff = float(np.abs(vectors[size] - vectors[REFERENCE]).max())
        print(f"| {size} | {rate:.0f} | {reference / np.mean(seconds[size]):.2f}x | {diff:.1e} |")
    compare_precisions(texts, CPU_ENCODE_BATCH)


def compare_precisions(texts: list[str], batch: int) -> None:
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


if __name__ == "__main__":
    main()
