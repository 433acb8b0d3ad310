"""The graph on the real Amazon data in ../shared/data (skipped where it is absent)."""

from __future__ import annotations

import ast
import csv
import math
from collections import Counter

import pytest

from recsys_pipeline_tests.helpers import (
    check_results,
    materialization_metadata,
    read_metrics,
    run_graph,
)


def popularity_on_test(artifacts):
    from recsys_pipeline.data.split import read_split
    from recsys_pipeline.data.vocab import load_vocab
    from recsys_pipeline.ranking.baselines import popularity_scorer
    from recsys_pipeline.ranking.protocol import evaluate_targets

    split = read_split(artifacts / "sequences")
    vocab = load_vocab(artifacts / "tokenizer")
    ranked = evaluate_targets({"p": popularity_scorer(split.train, vocab)}, split, vocab)["p"]
    assert len(ranked.user_ids) == 50_546
    return ranked.metrics()


def test_real_data_counts_and_popularity(tmp_path, shared_sequences, resources_for):
    result = run_graph(
        resources_for(shared_sequences), selection=["raw_csv", "sequences", "tokenizer"]
    )
    assert result.success and all(check_results(result).values())
    raw = materialization_metadata(result, "raw_csv")
    assert (raw["users"], raw["items"], raw["interactions"]) == (50_546, 16_859, 440_264)
    assert raw["quarantined_rows"] == 0
    assert materialization_metadata(result, "tokenizer")["vocab_size"] == 16_859 + 4
    metrics = popularity_on_test(tmp_path / "data" / "artifacts")
    assert metrics == pytest.approx(popularity_from_the_csv(shared_sequences), abs=1e-12)
    # the figures the README reports for this data
    assert metrics == pytest.approx(
        {"hr@10": 0.0103, "ndcg@10": 0.0058, "mrr@10": 0.0044}, abs=5e-5
    )


def popularity_from_the_csv(path) -> dict[str, float]:
    """The protocol written out from the file with the standard library only: leave-one-out,
    popularity = training interactions (short users whole), ties to the smaller item id."""
    with path.open(newline="") as handle:
        histories = [ast.literal_eval(row["history_item_id"]) for row in csv.DictReader(handle)]
    counts = Counter(i for h in histories for i in (h[:-2] if len(h) >= 3 else h))
    catalog = {i for h in histories for i in h}
    ranking = sorted(catalog, key=lambda i: (-counts[i], i))
    rank_of = {item: r + 1 for r, item in enumerate(ranking)}
    ranks = [rank_of[h[-1]] for h in histories if len(h) >= 3]
    hits = [r for r in ranks if r <= 10]
    n = len(ranks)
    return {
        "hr@10": len(hits) / n,
        "ndcg@10": sum(1 / math.log2(r + 1) for r in hits) / n,
        "mrr@10": sum(1 / r for r in hits) / n,
    }


@pytest.mark.slow
def test_real_data_whole_graph_smoke(tmp_path, shared_sequences, resources_for):
    """The whole graph on the real data with one epoch per stage: the model must beat popularity."""
    result = run_graph(
        resources_for(shared_sequences),
        sft_checkpoint={"config": {"stage1_epochs": 1, "stage2_epochs": 1}},
    )
    assert result.success and all(check_results(result).values())
    models = read_metrics(tmp_path / "data")["models"]
    assert models["sft"]["ndcg@10"] > 2 * models["popularity"]["ndcg@10"]
    from recsys_pipeline.data.vocab import load_vocab
    from recsys_pipeline.ranking.topk_files import read_top_k_csv

    artifacts = tmp_path / "data" / "artifacts"
    users, lists = read_top_k_csv(artifacts / "predictions" / "predictions.csv")
    with shared_sequences.open(newline="") as handle:
        expected_users = [int(row["user_id"]) for row in csv.DictReader(handle)]
    assert users.tolist() == expected_users
    catalog = set(load_vocab(artifacts / "tokenizer").item_ids.tolist())
    assert all(len(set(items)) == 10 and set(items) <= catalog for items in lists)
