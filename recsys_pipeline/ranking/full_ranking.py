"""Turn any scorer into top-k recommendations and full-ranking evaluation, batch by batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.monitoring.progress import Progress
from recsys_pipeline.ranking.metrics import TOP_K, ranking_metrics, target_ranks, top_k

if TYPE_CHECKING:
    import torch

# Scores for a batch of user histories: a (batch, n_items) tensor over the vocab's item columns.
Scorer = Callable[[Histories], "torch.Tensor"]


@dataclass(frozen=True)
class Ranked:
    user_ids: np.ndarray
    top_items: np.ndarray  # (n_users, k) item ids, best first
    ranks: np.ndarray | None  # 1-based rank of each user's target, when targets were given

    def metrics(self, k: int = TOP_K) -> dict[str, float]:
        if self.ranks is None:
            raise ValueError("no targets were ranked")
        return ranking_metrics(self.ranks, k)


def counted(scorer: Scorer, progress: Progress) -> Scorer:
    """``scorer``, counting into ``progress`` the users it has scored: the progress of any
    ranking that runs it, batch by batch."""

    def score(histories: Histories) -> torch.Tensor:
        scores = scorer(histories)
        progress.update(len(histories))
        return scores

    return score


def history_columns(histories: Histories, vocab: ItemVocab) -> tuple[np.ndarray, np.ndarray]:
    """(row, item column) of every catalog item in each user's history: what
    ``exclude_history`` never recommends."""
    rows = np.repeat(np.arange(len(histories)), histories.lengths)
    columns = vocab.columns_of_items(histories.items)
    known = columns < vocab.n_items
    return rows[known], columns[known]


def rank_users(
    scorer: Scorer,
    inputs: Histories,
    vocab: ItemVocab,
    targets: np.ndarray | None = None,
    k: int = TOP_K,
    exclude_history: bool = False,
    batch_size: int = 1024,
) -> Ranked:
    """Score every user's history over ALL items; keep the top k and the rank of each target."""
    tops, ranks = [], []
    for start in range(0, len(inputs), batch_size):
        stop = min(start + batch_size, len(inputs))
        batch = inputs.rows(start, stop)
        scores = scorer(batch)
        if exclude_history:
            rows, columns = history_columns(batch, vocab)
            scores = scores.clone()  # the scorer's tensor may be shared (e.g. an expanded row)
            scores[rows, columns] = float("-inf")
        tops.append(vocab.items_of_columns(top_k(scores, k)))
        if targets is not None:
            columns = vocab.columns_of_items(targets[start:stop])
            if np.any(columns >= vocab.n_items):
                raise ValueError("a target item is not in the vocabulary")
            ranks.append(target_ranks(scores, columns))
    return Ranked(
        user_ids=inputs.user_ids,
        top_items=np.concatenate(tops) if tops else np.empty((0, k), np.int64),
        ranks=np.concatenate(ranks) if targets is not None else None,
    )
