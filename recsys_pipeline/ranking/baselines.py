"""Baselines without learning: global popularity and last-item transitions."""

from __future__ import annotations

import numpy as np
import torch

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.ranking.full_ranking import Scorer


def popularity_scores(train: Histories, vocab: ItemVocab) -> np.ndarray:
    """Interaction count per item column, from the whole training part."""
    columns = vocab.columns_of_items(train.items)
    return np.bincount(columns[columns < vocab.n_items], minlength=vocab.n_items).astype(np.float32)


def popularity_scorer(train: Histories, vocab: ItemVocab) -> Scorer:
    """The same scores for every user (an expanded view, no per-user copy)."""
    scores = torch.from_numpy(popularity_scores(train, vocab))
    return lambda batch: scores.expand(len(batch), -1)


def transition_counts(train: Histories, vocab: ItemVocab) -> torch.Tensor:
    """Sparse (n_items x n_items) counts: row = an item column, column = the item column that
    followed it in a training part."""
    columns = vocab.columns_of_items(train.items)
    lengths = train.lengths
    follows = np.ones(len(columns), dtype=bool)
    follows[train.offsets[:-1][lengths > 0]] = False  # a user's first item follows nothing
    n = vocab.n_items
    pairs = columns[:-1][follows[1:]] * n + columns[1:][follows[1:]]
    unique, counts = np.unique(pairs, return_counts=True)
    return torch.sparse_coo_tensor(
        torch.from_numpy(np.stack([unique // n, unique % n])),
        torch.from_numpy(counts).float(),
        (n, n),
        is_coalesced=True,  # np.unique sorted the (row, column) pairs
        check_invariants=False,
    )


def last_columns(batch: Histories, vocab: ItemVocab) -> torch.Tensor:
    """Each history's most recent item column."""
    return torch.from_numpy(vocab.columns_of_items(batch.items[batch.offsets[1:] - 1]))


def transition_scorer(train: Histories, vocab: ItemVocab) -> Scorer:
    """Score = how often the candidate followed the user's last item in the training parts;
    popularity (scaled below one transition) breaks ties."""
    transitions = transition_counts(train, vocab)
    popularity = torch.from_numpy(popularity_scores(train, vocab))
    tie_break = popularity / (popularity.max() + 1)

    def score(batch: Histories) -> torch.Tensor:
        rows = last_columns(batch, vocab)
        return torch.index_select(transitions, 0, rows).to_dense() + tie_break

    return score
