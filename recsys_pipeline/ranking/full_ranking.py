"""Turn any scorer into top-k recommendations and full-ranking evaluation, batch by batch."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recsys_pipeline.histories import Histories
from recsys_pipeline.item_vocab import ItemVocab
from recsys_pipeline.metrics import TOP_K, ranking_metrics, target_ranks, top_k

if TYPE_CHECKING:
    import torch

# Scores for a batch of user histories: a (batch, n_items) tensor, column j = token id j + 1.
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
            rows = np.repeat(np.arange(stop - start), batch.lengths)
            scores = scores.clone()  # the scorer's tensor may be shared (e.g. an expanded row)
            scores[rows, vocab.encode(batch.items) - 1] = float("-inf")
        tops.append(vocab.decode(top_k(scores, k) + 1))
        if targets is not None:
            columns = vocab.encode(targets[start:stop]) - 1
            if np.any(columns >= vocab.n_items):
                raise ValueError("a target item is not in the vocabulary")
            ranks.append(target_ranks(scores, columns))
    return Ranked(
        user_ids=inputs.user_ids,
        top_items=np.concatenate(tops) if tops else np.empty((0, k), np.int64),
        ranks=np.concatenate(ranks) if targets is not None else None,
    )


def write_top_k_csv(path: Path, user_ids: np.ndarray, top_items: np.ndarray) -> None:
    """The contract format: ``user_id,item_id`` with item_id a Python list literal, best first."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id"])
        for user, items in zip(user_ids.tolist(), top_items.tolist(), strict=True):
            writer.writerow([user, str(items)])


def read_top_k_csv(path: Path) -> tuple[np.ndarray, list[list[int]]]:
    user_ids, lists = [], []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            user_ids.append(int(row["user_id"]))
            lists.append(json.loads(row["item_id"]))
    return np.array(user_ids, dtype=np.int64), lists
