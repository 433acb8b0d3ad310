"""Top-k item retrieval with faiss over the served model's output item vectors.

Scores are inner products (the model's logits without the seen-item bias). The exact flat index
returns the same top-k as the full softmax; above a configurable catalog size an HNSW or IVF index
trades a measured bit of recall for speed. Exact re-ranking adds the seen-item bias: faiss
returns ``k + max_length`` candidates, the user's own items are scored directly, and the best k
of both are kept (the bias only moves the user's own items, so nothing else can be missed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsys_pipeline.histories import Histories
from recsys_pipeline.item_vocab import ItemVocab

INDEX_FILE = "items.faiss"
INFO_FILE = "index.json"
KINDS = ("flat", "hnsw", "ivf")


@dataclass(frozen=True)
class IndexSpec:
    kind: str = "flat"
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    ivf_lists: int = 256
    ivf_probe: int = 16

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"index kind {self.kind!r} is not one of {KINDS}")


def gpu_count() -> int:
    import faiss

    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def build_index(vectors: np.ndarray, spec: IndexSpec, seed: int = 0) -> object:
    """An inner-product index over ``vectors`` (row j = item column j)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dims = vectors.shape[1]
    if spec.kind == "flat":
        index = faiss.IndexFlatIP(dims)
    elif spec.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dims, spec.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = spec.hnsw_ef_search
    else:
        lists = max(1, min(spec.ivf_lists, len(vectors) // 39))  # faiss wants ~39 points a list
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dims), dims, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(vectors)
        index.nprobe = min(spec.ivf_probe, lists)
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


def _own_items(histories: Histories, vocab: ItemVocab) -> np.ndarray:
    """(n_users, longest history) item columns of each user, each once, padded with -1."""
    width = int(histories.lengths.max()) if len(histories) else 0
    own = np.full((len(histories), width), -1, dtype=np.int64)
    for row in range(len(histories)):
        columns = np.unique(vocab.encode(histories[row]) - 1)
        columns = columns[columns < vocab.n_items]
        own[row, : len(columns)] = columns
    return own


def top_k_with_history(
    index: object,
    queries: np.ndarray,
    item_vectors: np.ndarray,
    histories: Histories,
    vocab: ItemVocab,
    k: int,
    seen_bias: float | None,
    exclude_history: bool,
) -> np.ndarray:
    """(n_users, k) item ids: the model's exact top-k including its seen-item bias (or with the
    user's items excluded), ties to the smaller item id. ``histories`` are the model inputs."""
    own = _own_items(histories, vocab)
    scores, columns = search(index, queries, min(k + own.shape[1], vocab.n_items))
    shift = -np.inf if exclude_history else (seen_bias or 0.0)
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
    if np.any(best < 0):
        raise ValueError(f"fewer than {k} recommendable items for some users")
    return vocab.decode(best + 1)
