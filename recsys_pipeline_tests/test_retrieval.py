from __future__ import annotations

import numpy as np
import torch

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.ranking.metrics import top_k
from recsys_pipeline.ranking.retrieval import (
    IndexSettings,
    build_index,
    padded,
    recall_at_k,
    recommend,
    search,
)
from recsys_pipeline.ranking.scoring import item_output_vectors, model_scorer
from recsys_pipeline_tests.test_models import tiny_model


def histories_for(n_users: int, seed: int = 0) -> Histories:
    rng = np.random.default_rng(seed)
    return Histories.from_lists(
        list(range(n_users)),
        [
            rng.choice(np.arange(1, 37), rng.integers(1, 12), replace=False).tolist()
            for _ in range(n_users)
        ],
    )


def test_exact_faiss_top10_equals_the_full_softmax_top10():
    model = tiny_model("sasrec_rope", max_history_length=8)
    vocab = ItemVocab(item_ids=np.arange(1, 37))
    histories = histories_for(50)  # longer than the model reads: both paths keep the last 8
    index = build_index(item_output_vectors(model, vocab).numpy(), "flat")
    for bias in (-0.5, 3.0):  # a positive bias pulls the user's items up
        with torch.no_grad():
            model.seen_bias.fill_(bias)
        served, served_scores = recommend(model, index, histories, vocab, 10)
        scores = model_scorer(model, vocab)(histories).numpy()
        softmax = vocab.decode(top_k(scores, 10) + 1)
        # the same lists, except where two scores differ by float rounding between faiss and torch
        same_rows = (served == softmax).all(axis=1)
        assert same_rows.mean() > 0.95
        assert np.allclose(
            served_scores, np.take_along_axis(scores, vocab.encode(served) - 1, axis=1), atol=1e-5
        )
        softmax_scores = np.take_along_axis(scores, vocab.encode(softmax) - 1, axis=1)
        assert np.allclose(served_scores, softmax_scores, atol=1e-5)


def test_excluding_history_excludes_the_whole_history_not_only_what_the_model_reads():
    model = tiny_model("sasrec", max_history_length=4)
    vocab = ItemVocab(item_ids=np.arange(1, 37))
    histories = histories_for(30, seed=3)
    assert (histories.lengths > 4).sum() >= 10
    index = build_index(item_output_vectors(model, vocab).numpy(), "flat")
    served = recommend(model, index, histories, vocab, 10, exclude_history=True).items
    for row in range(len(histories)):
        assert not set(served[row].tolist()) & set(histories[row].tolist())
        assert len(set(served[row].tolist())) == 10


def test_padded_lists_each_rows_distinct_columns():
    own = padded(np.array([0, 0, 2, 0, 2]), np.array([5, 3, 1, 5, 9]), 3)
    assert own.tolist() == [[3, 5], [-1, -1], [1, 9]]
    assert padded(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 2).shape == (2, 0)


def test_approximate_indexes_report_their_recall():
    rng = np.random.default_rng(0)
    items = rng.standard_normal((5000, 32)).astype(np.float32)
    queries = rng.standard_normal((200, 32)).astype(np.float32)
    exact = search(build_index(items, "flat"), queries, 10)[1]
    for kind in ("hnsw", "ivf"):
        found = search(build_index(items, kind, IndexSettings()), queries, 10)[1]
        recall = recall_at_k(found, exact)
        assert 0.5 < recall <= 1.0, (kind, recall)
    assert recall_at_k(exact, exact) == 1.0
    assert IndexSettings(exact_up_to=100).kind_for(101) == "hnsw"
    assert IndexSettings(exact_up_to=100, approximate="ivf").kind_for(100) == "flat"
