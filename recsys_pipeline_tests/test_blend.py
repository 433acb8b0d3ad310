from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.ranking.blend import (
    best_weight,
    blend_scorer,
    blend_weight_metrics,
    transition_probabilities,
)
from recsys_pipeline.ranking.full_ranking import rank_users

VOCAB = ItemVocab(item_ids=np.array([10, 20, 30, 40]))
# 10 -> 20 twice, 10 -> 30 once, 20 -> 30 once; nothing ever follows 30 or 40
TRAIN = Histories.from_lists([1, 2, 3], [[10, 20], [10, 20, 30], [10, 30]])


def fixed_model(logits: list[float]):
    return lambda batch: torch.tensor([logits] * len(batch))


def test_transition_probabilities_normalise_each_followed_item():
    dense = transition_probabilities(TRAIN, VOCAB).to_dense()
    assert dense[0].tolist() == pytest.approx([0.0, 2 / 3, 1 / 3, 0.0])
    assert dense[1].tolist() == pytest.approx([0.0, 0.0, 1.0, 0.0])
    assert dense[2].sum() == 0 and dense[3].sum() == 0  # never followed by anything


def test_blend_mixes_the_model_distribution_with_the_last_items_transitions():
    transitions = transition_probabilities(TRAIN, VOCAB)
    model = fixed_model([0.0, 0.0, 0.0, 3.0])  # the model prefers item 40
    users = Histories.from_lists([7, 8], [[30, 10], [40]])
    model_only = blend_scorer(model, transitions, VOCAB, 0.0)(users)
    assert model_only[0].tolist() == pytest.approx(torch.softmax(model(users)[0], 0).tolist())
    counts_only = blend_scorer(model, transitions, VOCAB, 1.0)(users)
    assert counts_only[0].tolist() == pytest.approx([0.0, 2 / 3, 1 / 3, 0.0])
    assert counts_only[1].sum() == 0  # 40 was never followed by anything
    half = blend_scorer(model, transitions, VOCAB, 0.5)(users)
    torch.testing.assert_close(half, (model_only + counts_only) / 2)
    assert half[1].argmax() == 3  # where the counts say nothing the model's order stays
    with pytest.raises(ValueError, match="blend weight"):
        blend_scorer(model, transitions, VOCAB, 1.5)


def test_weight_grid_equals_ranking_each_blend_alone():
    rng = np.random.default_rng(0)
    sequences = [rng.choice(VOCAB.item_ids, rng.integers(1, 6)).tolist() for _ in range(40)]
    inputs = Histories.from_lists(list(range(40)), sequences)
    targets = rng.choice(VOCAB.item_ids, 40)
    transitions = transition_probabilities(TRAIN, VOCAB)
    model = fixed_model([0.3, 0.1, 0.0, 0.2])
    grid = blend_weight_metrics(model, transitions, inputs, targets, VOCAB, (0.0, 0.4, 1.0), 16)
    for weight, metrics in grid.items():
        alone = rank_users(blend_scorer(model, transitions, VOCAB, weight), inputs, VOCAB, targets)
        assert metrics == pytest.approx(alone.metrics())
    assert grid[0.0] != grid[1.0]
    assert best_weight(grid) == max(grid, key=lambda weight: grid[weight]["ndcg@10"])


def test_best_weight_prefers_the_smaller_weight_on_a_tie():
    same = {"hr@10": 0.5, "ndcg@10": 0.25, "mrr@10": 0.2}
    assert best_weight({0.3: same, 0.1: same, 0.0: {**same, "ndcg@10": 0.1}}) == 0.1
