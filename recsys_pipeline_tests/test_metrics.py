from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recsys_pipeline.ranking.metrics import ranking_metrics, target_ranks, top_k


def reference_order(scores: np.ndarray) -> np.ndarray:
    """Sort every row by (-score, column): the contract's tie rule, the slow obvious way."""
    columns = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    return np.lexsort((columns, -scores), axis=1)


def test_hand_computed_metrics():
    # ranks 1, 3, 11: HR = 2/3; NDCG = (1 + 1/log2(4) + 0) / 3; MRR = (1 + 1/3 + 0) / 3
    metrics = ranking_metrics(np.array([1, 3, 11]))
    assert metrics["hr@10"] == pytest.approx(2 / 3)
    assert metrics["ndcg@10"] == pytest.approx((1 + 0.5) / 3)
    assert metrics["mrr@10"] == pytest.approx((1 + 1 / 3) / 3)
    assert ranking_metrics(np.array([10]))["ndcg@10"] == pytest.approx(1 / math.log2(11))


def test_ties_go_to_the_smaller_item():
    scores = np.array([[0.5, 0.9, 0.5, 0.9, 0.1]])
    # order: col1 (0.9), col3 (0.9), col0 (0.5), col2 (0.5), col4
    assert top_k(scores, 3).tolist() == [[1, 3, 0]]
    assert target_ranks(scores, np.array([3])).tolist() == [2]
    assert target_ranks(scores, np.array([2])).tolist() == [4]
    assert target_ranks(scores, np.array([0])).tolist() == [3]


def test_all_equal_scores_rank_by_id():
    scores = np.zeros((2, 20))
    assert top_k(scores, 10).tolist() == [list(range(10))] * 2
    assert target_ranks(scores, np.array([0, 15])).tolist() == [1, 16]
    assert ranking_metrics(target_ranks(scores, np.array([0, 15])))["mrr@10"] == 0.5


def test_top_k_and_ranks_match_a_full_sort_on_random_ties():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m, k = rng.integers(1, 20), rng.integers(1, 40), rng.integers(1, 12)
        scores = rng.integers(0, 4, (n, m)).astype(np.float32)
        order = reference_order(scores)
        assert np.array_equal(top_k(scores, k), order[:, : min(k, m)])
        targets = rng.integers(0, m, n)
        expected = np.array([np.flatnonzero(order[i] == targets[i])[0] + 1 for i in range(n)])
        assert np.array_equal(target_ranks(scores, targets), expected)


def test_accepts_torch_tensors_and_excluded_columns():
    scores = torch.tensor([[float("-inf"), 1.0, 2.0, float("-inf")]])
    assert top_k(scores, 2).tolist() == [[2, 1]]
    assert target_ranks(scores, np.array([0])).tolist() == [3]
