"""What the online service holds in memory: the served model, its faiss index, the catalog and
the known users' histories, all at the versions the latest faiss_index materialization recorded
(its index.json names the model, tokenizer and sequences versions it was built from). Recommending
goes through the batch path's own function, so a known user gets exactly the list
predictions.csv holds."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recsys_pipeline.data.artifacts import ArtifactStore
from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.input_formats import CANONICAL_INT
from recsys_pipeline.data.vocab import ItemVocab

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")


class UnknownItems(ValueError):
    """Item ids outside the catalog; ``ids`` lists them (deduplicated, in request order)."""

    def __init__(self, ids: list[object]) -> None:
        super().__init__(f"unknown item ids: {ids}")
        self.ids = ids


Id = int | str


@dataclass(frozen=True)
class Recommendation:
    item_ids: list[Id]
    scores: list[float]
    fallback: str | None  # "popularity" for an empty history
    history_used: int  # items the model read (the most recent ones)
    truncated: bool  # the history was longer than the model reads


@dataclass
class Bundle:
    version: str  # the faiss_index version folder served
    model_name: str  # "sft" or "dpo"
    model_version: str
    index_kind: str
    model: object
    vocab: ItemVocab
    titles: dict[Id, str]
    index: object
    histories: dict[Id, np.ndarray]  # known users' whole histories
    popularity: np.ndarray  # item ids, most bought first (the empty-history answer)
    popularity_counts: dict[Id, int]
    max_history_length: int
    item_vectors: np.ndarray  # the model's item output rows, kept for every request
    loaded_at: float = field(default_factory=time.time)

    def item_key(self, item_id: Id) -> Id:
        """``item_id`` as the catalog's kind where it can be (7 for "7" in an integer catalog,
        "7" for 7 in a string one): JSON clients do not always keep an id's type."""
        return _as_kind(item_id, self.vocab.string_ids)

    def user_key(self, user_id: Id) -> Id:
        strings = bool(self.histories) and isinstance(next(iter(self.histories)), str)
        return _as_kind(user_id, strings)

    def known_items(self, history: list[Id]) -> list[Id]:
        """The history in the catalog's ids; UnknownItems lists the ids it does not hold."""
        keys = [self.item_key(i) for i in history]
        unknown = [
            i
            for i, key in dict(zip(history, keys, strict=True)).items()
            if key in SPECIAL_TOKENS or key not in self.titles
        ]
        if unknown:
            raise UnknownItems(list(dict.fromkeys(unknown)))
        return keys

    def recommend(
        self, histories: list[list[Id]], k: int, exclude_history: bool
    ) -> list[Recommendation]:
        """One pass through the model for every non-empty history; empty ones get popularity.
        A list is shorter than ``k`` where fewer items can be recommended (a small catalog, or a
        history excluding nearly all of it)."""
        from recsys_pipeline.ranking.retrieval import recommend

        histories = [self.known_items(history) for history in histories]
        rows = [i for i, h in enumerate(histories) if h]
        found = None
        if rows:
            batch = Histories.from_lists(rows, [histories[i] for i in rows])
            found = recommend(
                self.model,
                self.index,
                batch,
                self.vocab,
                k,
                exclude_history,
                item_vectors=self.item_vectors,
                allow_fewer=True,
            )
        out: list[Recommendation | None] = [None] * len(histories)
        for position, row in enumerate(rows):
            used = min(len(histories[row]), self.max_history_length)
            scores = found.scores[position]
            kept = int((scores > -np.inf).sum())  # the padding's -inf scores sort last
            out[row] = Recommendation(
                found.items[position][:kept].tolist(),
                [round(float(s), 6) for s in scores[:kept]],
                None,
                used,
                len(histories[row]) > used,
            )
        for row, history in enumerate(histories):
            if not history:
                top = self.popularity[:k]
                counts = [float(self.popularity_counts[i]) for i in top.tolist()]
                out[row] = Recommendation(top.tolist(), counts, "popularity", 0, False)
        return out


def load_bundle(store: ArtifactStore, version: str) -> Bundle:
    """The bundle of faiss_index ``version`` and of the exact model, tokenizer and sequences
    versions it was built from (each pinned while it is read)."""
    from recsys_pipeline.data.split import read_split
    from recsys_pipeline.data.vocab import load_titles, load_vocab
    from recsys_pipeline.models.checkpoints import load_checkpoint
    from recsys_pipeline.models.served import CHECKPOINT_ASSETS
    from recsys_pipeline.ranking.baselines import popularity_scores
    from recsys_pipeline.ranking.retrieval import read_index
    from recsys_pipeline.ranking.scoring import item_output_vectors

    with contextlib.ExitStack() as pins:
        index_folder = pins.enter_context(store.pinned("faiss_index", version))
        index, info = read_index(index_folder)
        # the served model as served_model recorded it when the index was built
        checkpoint = CHECKPOINT_ASSETS[info["model"]]
        model_folder = pins.enter_context(store.pinned(checkpoint, info["model_version"]))
        catalog = pins.enter_context(store.pinned("tokenizer", info["tokenizer_version"]))
        sequences = pins.enter_context(store.pinned("sequences", info["sequences_version"]))
        model = load_checkpoint(model_folder)
        vocab = load_vocab(catalog)
        titles = dict(zip(vocab.item_ids.tolist(), load_titles(catalog), strict=True))
        split = read_split(sequences)
    full = split.inputs_for("next")
    counts = popularity_scores(full, vocab)  # serving knows every purchase so far
    order = np.lexsort((vocab.item_ids, -counts))  # most bought first, ties to the smaller id
    return Bundle(
        version=version,
        model_name=info["model"],
        model_version=info["model_version"],
        index_kind=info["kind"],
        model=model,
        vocab=vocab,
        titles=titles,
        index=index,
        histories={u: full[r] for r, u in enumerate(full.user_ids.tolist())},
        popularity=vocab.item_ids[order],
        popularity_counts=dict(
            zip(vocab.item_ids.tolist(), counts.astype(int).tolist(), strict=True)
        ),
        max_history_length=model.config.max_history_length,
        item_vectors=item_output_vectors(model, vocab).numpy(),
    )


def _as_kind(value: Id, strings: bool) -> Id:
    if strings:
        return str(value)
    # an integer catalog's ids are int64s (20 characters at most): a longer string cannot be one,
    # and int() refuses strings of over 4300 digits
    if isinstance(value, str) and len(value) <= 20 and CANONICAL_INT.fullmatch(value):
        return int(value)
    return value


def published_version(root: Path) -> str | None:
    """The faiss_index version currently published under ``root`` (None: never built)."""
    link = Path(root) / "faiss_index"
    return link.resolve().name if link.exists() else None
