from __future__ import annotations

from recsys_pipeline_tests.conftest import REPO
from recsys_pipeline_tests.helpers import materialize_cli, run_graph


def published(artifacts) -> dict:
    return {p.name: p.resolve() for p in artifacts.iterdir() if not p.name.startswith(".")}


def test_materialize_raw_csv_plus_from_the_cli(tmp_path, tiny_csv):
    done = materialize_cli("raw_csv+", tmp_path, tiny_csv, cwd=tmp_path)
    assert "RUN_SUCCESS" in done.stderr
    artifacts = tmp_path / "data" / "artifacts"
    # raw_csv+ = raw_csv and its direct children
    assert set(published(artifacts)) == {"raw_csv", "sequences", "tokenizer"}
    assert (artifacts / "tokenizer" / "tokenizer.json").is_file()


def test_dpo_checkpoint_downstream_rebuilds_exactly_the_served_side(
    tmp_path, tiny_csv, resources_for
):
    run_graph(
        resources_for(tiny_csv), sft_checkpoint={"config": {"stage1_epochs": 1, "stage2_epochs": 1}}
    )
    artifacts = tmp_path / "data" / "artifacts"
    before = published(artifacts)
    materialize_cli("dpo_checkpoint*", tmp_path, tiny_csv, cwd=REPO)
    after = published(artifacts)
    rebuilt = {name for name in after if after[name] != before.get(name)}
    assert rebuilt == {"dpo_checkpoint", "served_model", "faiss_index", "predictions", "evaluation"}


def test_an_enrichment_selection_closed_upstream_runs_on_a_fresh_instance(tmp_path, tiny_csv):
    # tokenizer's blocking check reads sequences: the selection must build sequences first
    done = materialize_cli("*steam_enrichment,*wiki_enrichment", tmp_path, tiny_csv, cwd=REPO)
    assert "RUN_SUCCESS" in done.stderr
    built = set(published(tmp_path / "data" / "artifacts"))
    assert built == {
        "raw_csv",
        "sequences",
        "tokenizer",
        "steam_enrichment",
        "wiki_summaries",
        "wiki_enrichment",
    }
