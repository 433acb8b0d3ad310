"""The graph on the real Amazon data in ../shared/data (skipped where it is absent)."""

from __future__ import annotations

import pytest

from recsys_pipeline_tests.helpers import (
    check_results,
    materialization_metadata,
    read_metrics,
    run_graph,
)


def popularity_on_test(artifacts):
    from recsys_pipeline.baselines import popularity_scorer
    from recsys_pipeline.evaluation import evaluate_on_test
    from recsys_pipeline.item_vocab import load_vocab
    from recsys_pipeline.split import read_split

    split = read_split(artifacts / "sequences")
    vocab = load_vocab(artifacts / "tokenizer")
    ranked = evaluate_on_test({"p": popularity_scorer(split.train, vocab)}, split, vocab)["p"]
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
    for value in metrics.values():
        assert 0 < value < 1


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
    predictions = (tmp_path / "data" / "artifacts" / "predictions" / "predictions.csv").read_text()
    assert predictions.count("\n") == 50_546 + 1
