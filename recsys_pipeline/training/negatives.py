"""Hard and easy negatives for DPO, mined with faiss over item vectors (cosine similarity).

For each positive item, the candidates are its nearest items by cosine similarity with the
positive itself and every item of the user's whole sequence removed (held-out targets
included, so a negative can never be an answer the user will give). A negative is "hard" (one
of the ``hard_ranks`` nearest candidates) with probability ``hard_share``, else "easy" (ranks
``hard_ranks + 1`` .. ``easy_ranks``). When a pool runs dry the other one is used, then any
item the user has not touched; a user who has touched every item gets no pair. The same seed
always gives the same negatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

HARD, EASY, RANDOM = "hard", "easy", "random"


class MiningSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    hard_share: float = Field(
        0.3, ge=0.0, le=1.0, description="share of negatives drawn from the nearest items"
    )
    hard_ranks: int = Field(10, ge=1, description='"nearest" = this many most similar candidates')
    easy_ranks: int = Field(
        200, ge=2, description="easy negatives come from ranks hard_ranks+1 .. this"
    )
    negatives_per_positive: int = Field(1, ge=1, description="preference pairs per positive")
    seed: int = Field(0, description="seed of the draws (the same seed, the same negatives)")

    @model_validator(mode="after")
    def _ranks_ordered(self) -> MiningSettings:
        if self.hard_ranks >= self.easy_ranks:
            raise ValueError("need hard_ranks < easy_ranks")
        return self


@dataclass(frozen=True)
class MinedNegatives:
    pair_row: np.ndarray  # index into the positives for each mined negative
    negative: np.ndarray  # item column of the negative
    kind: np.ndarray  # HARD / EASY / RANDOM


def nearest_items(vectors: np.ndarray, columns: np.ndarray, k: int) -> np.ndarray:
    """(len(columns), k) nearest item columns by cosine similarity (exact faiss search);
    the query item itself is among them."""
    import faiss

    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    return index.search(unit[columns], min(k, len(unit)))[1]


def mine_negatives(
    vectors: np.ndarray,
    positives: np.ndarray,
    exclusions: list[np.ndarray],
    settings: MiningSettings,
) -> MinedNegatives:
    """``positives[i]`` is an item column, ``exclusions[i]`` the columns pair i must avoid."""
    n_items = len(vectors)
    longest = max((len(e) for e in exclusions), default=0)
    unique, inverse = np.unique(positives, return_inverse=True)
    neighbours = nearest_items(vectors, unique, settings.easy_ranks + longest + 1)
    rng = np.random.default_rng(settings.seed)
    rows, negatives, kinds = [], [], []
    for i, positive in enumerate(positives.tolist()):
        banned = set(exclusions[i].tolist()) | {positive}
        ranked = [c for c in neighbours[inverse[i]].tolist() if c not in banned and c >= 0]
        pools = {
            HARD: ranked[: settings.hard_ranks],
            EASY: ranked[settings.hard_ranks : settings.easy_ranks],
        }
        for _ in range(settings.negatives_per_positive):
            first = HARD if rng.random() < settings.hard_share else EASY
            second = EASY if first == HARD else HARD
            kind = first if pools[first] else second if pools[second] else RANDOM
            if kind == RANDOM:
                choice = _random_allowed(rng, n_items, banned)
                if choice is None:
                    break  # the user has touched every item
            else:
                choice = pools[kind].pop(int(rng.integers(len(pools[kind]))))
            banned.add(choice)
            rows.append(i)
            negatives.append(choice)
            kinds.append(kind)
    return MinedNegatives(
        np.array(rows, dtype=np.int64),
        np.array(negatives, dtype=np.int64),
        np.array(kinds, dtype=str),
    )


def _random_allowed(rng: np.random.Generator, n_items: int, banned: set[int]) -> int | None:
    if len(banned) >= n_items:
        return None
    for _ in range(64):  # cheap when most items are allowed, as in any real catalog
        choice = int(rng.integers(n_items))
        if choice not in banned:
            return choice
    allowed = np.setdiff1d(np.arange(n_items), np.fromiter(banned, dtype=np.int64))
    return int(rng.choice(allowed)) if len(allowed) else None
