"""Top-k item retrieval with faiss over the served model's output item vectors.

Scores are inner products (the model's logits without the seen-item bias). The exact flat index
returns the same top-k as the full softmax; above a configurable catalog size an HNSW or IVF index
trades a measured bit of recall for speed. Exact re-ranking adds the seen-item bias: faiss
returns ``k + len(own items)`` candidates, the user's own items are scored directly, and the best
k of both are kept (the bias only moves the user's own items, so nothing else can be missed).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.monitoring.progress import Progress
from recsys_pipeline.ranking.full_ranking import history_columns
from recsys_pipeline.ranking.metrics import TOP_K

INDEX_FILE = "items.faiss"
INFO_FILE = "index.json"
IndexKind = Literal["flat", "hnsw", "ivf"]


class IndexSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    exact_up_to: int = Field(
        200_000, ge=1, description="catalogs up to this size get the exact flat index"
    )
    approximate: Literal["hnsw", "ivf"] = Field("hnsw", description="index above that size")
    hnsw_m: int = Field(32, ge=2, description="HNSW links per node")
    hnsw_ef_search: int = Field(128, ge=1, description="HNSW candidates kept while searching")
    ivf_lists: int = Field(256, ge=1, description="IVF clusters (fewer on small catalogs)")
    ivf_probe: int = Field(16, ge=1, description="IVF clusters searched per query")
    recall_sample: int = Field(
        2000, ge=1, description="users whose exact top-10 the index is checked against"
    )

    def kind_for(self, n_items: int) -> IndexKind:
        return "flat" if n_items <= self.exact_up_to else self.approximate


def gpu_count() -> int:
    import faiss

    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def build_index(
    vectors: np.ndarray, kind: IndexKind, settings: IndexSettings | None = None, seed: int = 0
) -> object:
    """An inner-product index over ``vectors`` (row j = item column j)."""
    import faiss

    settings = settings or IndexSettings()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dims = vectors.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(dims)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dims, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = settings.hnsw_ef_search
    elif kind == "ivf":
        lists = max(1, min(settings.ivf_lists, len(vectors) // 39))  # faiss wants ~39 a list
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dims), dims, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(vectors)
        index.nprobe = min(settings.ivf_probe, lists)
    else:
        raise ValueError(f"index kind {kind!r} is not one of flat, hnsw, ivf")
    index.add(vectors)
    return index


def on_gpu(index: object) -> object:
    """The same index on GPU 0 when faiss-gpu sees one (flat and IVF; HNSW stays on the CPU)."""
    import faiss

    if gpu_count() and not isinstance(index, faiss.IndexHNSWFlat):
        return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    return index


def search(index: object, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores, columns = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return scores, columns


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Share of the exact top-k that an approximate search also returned."""
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, exact, strict=True))
    return hits / exact.size


def write_index(index: object, folder: Path, info: dict) -> None:
    import faiss

    faiss.write_index(index, str(folder / INDEX_FILE))
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2))


def read_index(folder: Path) -> tuple[object, dict]:
    import faiss

    return faiss.read_index(str(folder / INDEX_FILE)), json.loads((folder / INFO_FILE).read_text())


def build_item_index(
    model: object, vocab: ItemVocab, sample: Histories, settings: IndexSettings
) -> tuple[object, dict]:
    """The index over ``model``'s item vectors, and its recall@10 against exact search for the
    users in ``sample`` (1.0 for the exact index)."""
    from recsys_pipeline.ranking.scoring import item_output_vectors, user_vectors

    items = item_output_vectors(model, vocab).numpy()
    kind = settings.kind_for(vocab.n_items)
    index = build_index(items, kind, settings)
    queries = user_vectors(model, sample, vocab).numpy()
    exact = build_index(items, "flat")
    recall = recall_at_k(search(index, queries, TOP_K)[1], search(exact, queries, TOP_K)[1])
    info = {"kind": kind, "items": vocab.n_items, "dimensions": int(items.shape[1])}
    return index, {**info, "recall@10": recall}


def padded(rows: np.ndarray, columns: np.ndarray, n_rows: int) -> np.ndarray:
    """(n_rows, widest row) of each row's distinct columns, padded with -1."""
    pairs = np.unique(np.stack([rows, columns], axis=1), axis=0) if len(rows) else rows[:, None]
    counts = np.bincount(pairs[:, 0], minlength=n_rows) if len(rows) else np.zeros(n_rows, int)
    out = np.full((n_rows, int(counts.max()) if n_rows else 0), -1, dtype=np.int64)
    if len(rows):
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        out[pairs[:, 0], np.arange(len(pairs)) - starts[pairs[:, 0]]] = pairs[:, 1]
    return out


def top_k_with_history(
    index: object,
    queries: np.ndarray,
    item_vectors: np.ndarray,
    own: np.ndarray,
    shift: float,
    k: int,
    allow_fewer: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(n_users, k) item columns and their scores, best first, ties to the smaller column: the
    index's top-k with ``shift`` added to the score of each user's ``own`` columns
    ((n_users, width), -1 pads; -inf excludes them). A user with fewer than k recommendable items
    (a catalog smaller than k, or a history excluding nearly all of it) raises, unless
    ``allow_fewer``: then their row ends in column -1 and score -inf."""
    n_items = len(item_vectors)
    scores, columns = search(index, queries, min(k + own.shape[1], n_items))
    own_scores = np.einsum("ud,ujd->uj", queries, item_vectors[np.maximum(own, 0)]) + shift
    own_scores[own < 0] = -np.inf
    # a faiss hit that is one of the user's items is superseded by its entry in `own`
    superseded = (columns[:, :, None] == own[:, None, :]).any(axis=2) | (columns < 0)
    scores = np.where(superseded, -np.inf, scores)
    candidates = np.concatenate([columns, own], axis=1)
    candidate_scores = np.concatenate([scores, own_scores], axis=1)
    tie_break = np.where(candidates < 0, np.iinfo(np.int64).max, candidates)
    order = np.lexsort((tie_break, -candidate_scores), axis=1)[:, :k]
    best = np.take_along_axis(candidates, order, axis=1)
    best_scores = np.take_along_axis(candidate_scores, order, axis=1)
    missing = k - best.shape[1]  # a catalog smaller than k has fewer candidates
    best = np.pad(best, ((0, 0), (0, missing)), constant_values=-1)
    best_scores = np.pad(best_scores, ((0, 0), (0, missing)), constant_values=-np.inf)
    nothing = best_scores == -np.inf  # every -1 candidate scores -inf too
    if not allow_fewer and nothing.any():
        short = int(nothing.any(axis=1).sum())
        raise ValueError(
            f"fewer than {k} recommendable items for {short} of {len(best)} users: the catalog "
            f"({n_items} items) minus what is excluded is too small for a top-{k}"
        )
    return np.where(nothing, -1, best), best_scores


class Recommended(NamedTuple):
    items: np.ndarray  # (n_users, k) item ids, best first
    scores: np.ndarray  # (n_users, k) the model's logits (seen-item bias included)
    # with ``allow_fewer``, a row's items past its first score of -inf are padding, not items


def recommend(
    model: object,
    index: object,
    histories: Histories,
    vocab: ItemVocab,
    k: int = TOP_K,
    exclude_history: bool = False,
    batch_size: int = 4096,
    item_vectors: np.ndarray | None = None,
    allow_fewer: bool = False,
    progress_log: Callable[[str], None] | None = None,
) -> Recommended:
    """(n_users, k) item ids and scores, best first: the model's exact top-k after each user's
    history, seen-item bias included, or with everything the user has excluded.
    ``item_vectors``: the model's item output rows, when the caller keeps them (a service).
    A user with fewer than k recommendable items raises, unless ``allow_fewer`` (a service, which
    answers with what there is): then their row is padded with scores of -inf.
    ``progress_log``: where progress lines go (users done, batch by batch)."""
    from recsys_pipeline.ranking.scoring import (
        item_output_vectors,
        last_hidden,
        model_inputs,
        seen_bias_of,
        seen_columns,
    )

    items = item_output_vectors(model, vocab).numpy() if item_vectors is None else item_vectors
    bias = seen_bias_of(model)
    tops, scores = [], []
    model.eval()
    with Progress(progress_log, f"top-{k} recommendations", len(histories), "users") as progress:
        for start in range(0, len(histories), batch_size):
            batch = histories.rows(start, start + batch_size)
            ids, mask = model_inputs(model, batch, vocab)
            queries = last_hidden(model, ids, mask).cpu().numpy()
            if exclude_history:
                own, shift = padded(*history_columns(batch, vocab), len(batch)), -np.inf
            elif bias is not None:
                own, shift = seen_columns(model, ids, mask, vocab), bias
            else:
                own, shift = np.empty((len(batch), 0), dtype=np.int64), 0.0
            columns, best = top_k_with_history(index, queries, items, own, shift, k, allow_fewer)
            tops.append(columns)
            scores.append(best)
            progress.update(len(batch))
    if not tops:
        return Recommended(np.empty((0, k), np.int64), np.empty((0, k), np.float32))
    # padding (column -1) decodes as the first item: an id of the catalog's kind, marked by -inf
    columns = np.maximum(np.concatenate(tops), 0)
    return Recommended(vocab.items_of_columns(columns), np.concatenate(scores))
