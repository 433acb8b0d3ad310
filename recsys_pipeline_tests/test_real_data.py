"""The first stages on the real Amazon data in ../shared/data (skipped where it is absent)."""

from __future__ import annotations

from recsys_pipeline_tests.helpers import (
    check_results,
    materialization_metadata,
    read_metrics,
    run_graph,
)


def test_real_data_counts_and_popularity(tmp_path, shared_sequences, resources_for):
    result = run_graph(resources_for(shared_sequences))
    assert result.success and all(check_results(result).values())
    raw = materialization_metadata(result, "raw_csv")
    assert (raw["users"], raw["items"], raw["interactions"]) == (50_546, 16_859, 440_264)
    assert raw["quarantined_rows"] == 0
    assert materialization_metadata(result, "tokenizer")["vocab_size"] == 16_859 + 4
    metrics = read_metrics(tmp_path / "data")
    assert metrics["n_users"] == 50_546
    for value in metrics["models"]["popularity"].values():
        assert 0 < value < 1
