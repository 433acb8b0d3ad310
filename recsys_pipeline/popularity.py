"""Global popularity: every user gets the items bought most often in the training part."""

from __future__ import annotations

import numpy as np

from recsys_pipeline.histories import Histories
from recsys_pipeline.item_vocab import ItemVocab
from recsys_pipeline.ranking import Scorer


def popularity_scores(train: Histories, vocab: ItemVocab) -> np.ndarray:
    """Interaction count per item column (column j = token id j + 1), from the whole training part."""
    columns = vocab.encode(train.items) - 1
    return np.bincount(columns[columns < vocab.n_items], minlength=vocab.n_items).astype(np.float32)


def popularity_scorer(train: Histories, vocab: ItemVocab) -> Scorer:
    """The same scores for every user (an expanded view, no per-user copy)."""
    import torch

    scores = torch.from_numpy(popularity_scores(train, vocab))
    return lambda batch: scores.expand(len(batch), -1)
