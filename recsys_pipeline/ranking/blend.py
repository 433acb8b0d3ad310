"""A model's next-item distribution mixed with the last-item transition distribution:
``(1 - w) * softmax(model logits) + w * P(candidate | last item)``, the interpolation of a
neural model with a count model. The weight is chosen on the validation targets, all candidate
weights scored from one pass of the model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.split import Split
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.ranking.baselines import last_columns, transition_counts
from recsys_pipeline.ranking.full_ranking import Scorer
from recsys_pipeline.ranking.metrics import ranking_metrics, target_ranks

BLEND_WEIGHTS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7)


def transition_probabilities(train: Histories, vocab: ItemVocab) -> torch.Tensor:
    """Sparse row-normalised transition counts (an item never followed by anything: a zero row)."""
    counts = transition_counts(train, vocab)
    rows, values = counts.indices()[0], counts.values()
    totals = torch.zeros(vocab.n_items).index_add_(0, rows, values)
    return torch.sparse_coo_tensor(
        counts.indices(),
        values / totals[rows],
        counts.shape,
        is_coalesced=True,
        check_invariants=False,
    )


def _parts(
    model: Scorer, transitions: torch.Tensor, batch: Histories, vocab: ItemVocab
) -> tuple[torch.Tensor, torch.Tensor]:
    probabilities = torch.softmax(model(batch).float(), dim=1)
    following = torch.index_select(transitions, 0, last_columns(batch, vocab)).to_dense()
    return probabilities, following


def blend_scorer(
    model: Scorer, transitions: torch.Tensor, vocab: ItemVocab, weight: float
) -> Scorer:
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight must lie in [0, 1], got {weight}")

    def score(batch: Histories) -> torch.Tensor:
        probabilities, following = _parts(model, transitions, batch, vocab)
        return torch.lerp(probabilities, following, weight)

    return score


def blend_weight_metrics(
    model: Scorer,
    transitions: torch.Tensor,
    inputs: Histories,
    targets: np.ndarray,
    vocab: ItemVocab,
    weights: tuple[float, ...] = BLEND_WEIGHTS,
    batch_size: int = 1024,
) -> dict[float, dict[str, float]]:
    """HR/NDCG/MRR@10 of every weight on these targets (the validation targets, to choose by)."""
    ranks: dict[float, list[np.ndarray]] = {weight: [] for weight in weights}
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            batch = inputs.rows(start, start + batch_size)
            columns = vocab.columns_of_items(targets[start : start + batch_size])
            probabilities, following = _parts(model, transitions, batch, vocab)
            for weight in weights:
                mixed = torch.lerp(probabilities, following, weight)
                ranks[weight].append(target_ranks(mixed, columns))
    return {weight: ranking_metrics(np.concatenate(found)) for weight, found in ranks.items()}


def best_weight(grid: dict[float, dict[str, float]]) -> float:
    """The weight of the best NDCG@10; on a tie the smaller weight (the model alone first)."""
    return max(sorted(grid), key=lambda weight: grid[weight]["ndcg@10"])


@dataclass(frozen=True)
class Blend:
    weight: float
    grid: dict[float, dict[str, float]]  # validation metrics of every weight tried
    scorer: Scorer


def fit_blend(model: Scorer, split: Split, vocab: ItemVocab) -> Blend:
    """The blend of ``model`` with the training parts' transitions, its weight chosen on the
    validation targets."""
    transitions = transition_probabilities(split.train, vocab)
    grid = blend_weight_metrics(model, transitions, *split.validation(), vocab)
    weight = best_weight(grid)
    return Blend(weight, grid, blend_scorer(model, transitions, vocab, weight))
