from __future__ import annotations

import numpy as np
import torch

from recsys_pipeline.histories import Histories
from recsys_pipeline.item_vocab import ItemVocab
from recsys_pipeline.metrics import top_k
from recsys_pipeline.retrieval import (
    IndexSpec,
    build_index,
    recall_at_k,
    search,
    top_k_with_history,
)
from recsys_pipeline.scoring import item_output_vectors, model_scorer, seen_bias_of, user_vectors
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
    model = tiny_model("sasrec_rope")
    with torch.no_grad():
        model.seen_bias.fill_(-0.5)
    vocab = ItemVocab(item_ids=np.arange(1, 37))
    histories = histories_for(50).truncated(8)  # what the model reads
    items = item_output_vectors(model, vocab).numpy()
    index = build_index(items, IndexSpec(kind="flat"))
    queries = user_vectors(model, histories, vocab, max_length=8).numpy()
    for bias in (seen_bias_of(model), 3.0):  # a positive bias pulls the user's items up
        with torch.no_grad():
            model.seen_bias.fill_(bias)
        served = top_k_with_history(index, queries, items, histories, vocab, 10, bias, False)
        scores = model_scorer(model, vocab, max_length=8)(histories).numpy()
        softmax = vocab.decode(top_k(scores, 10) + 1)
        # the same lists, except where two scores differ by float rounding between faiss and torch
        same_rows = (served == softmax).all(axis=1)
        assert same_rows.mean() > 0.95
        served_scores = np.take_along_axis(scores, vocab.encode(served) - 1, axis=1)
        softmax_scores = np.take_along_axis(scores, vocab.encode(softmax) - 1, axis=1)
        assert np.allclose(served_scores, softmax_scores, atol=1e-5)


def test_excluding_history():
    model = tiny_model("sasrec")
    vocab = ItemVocab(item_ids=np.arange(1, 37))
    histories = histories_for(30, seed=3)
    items = item_output_vectors(model, vocab).numpy()
    queries = user_vectors(model, histories, vocab, max_length=20).numpy()
    served = top_k_with_history(
        build_index(items, IndexSpec()),
        queries,
        items,
        histories,
        vocab,
        10,
        seen_bias_of(model),
        True,
    )
    for row in range(len(histories)):
        assert not set(served[row].tolist()) & set(histories[row].tolist())
        assert len(set(served[row].tolist())) == 10


def test_approximate_indexes_report_their_recall():
    rng = np.random.default_rng(0)
    items = rng.standard_normal((5000, 32)).astype(np.float32)
    queries = rng.standard_normal((200, 32)).astype(np.float32)
    exact = search(build_index(items, IndexSpec(kind="flat")), queries, 10)[1]
    for kind in ("hnsw", "ivf"):
        found = search(build_index(items, IndexSpec(kind=kind)), queries, 10)[1]
        recall = recall_at_k(found, exact)
        assert 0.5 < recall <= 1.0, (kind, recall)
    assert recall_at_k(exact, exact) == 1.0
