from __future__ import annotations

import csv
import json
import math

import dagster as dg
import numpy as np
import pytest

from recsys_pipeline.data.split import read_split
from recsys_pipeline_tests.conftest import tiny_rows, write_rows
from recsys_pipeline_tests.helpers import (
    check_results,
    failure_message,
    materialization_metadata,
    read_metrics,
    republish,
    run_graph,
)
from recsys_pipeline_tests.test_models import expected_parameters


def test_whole_graph_on_tiny_data(tmp_path, tiny_csv, resources_for):
    result = run_graph(resources_for(tiny_csv))
    assert result.success
    data = tmp_path / "data"
    artifacts = data / "artifacts"
    # the DPO check is a warning either way; it must say what serving.json recorded
    serving = json.loads((artifacts / "dpo_checkpoint" / "serving.json").read_text())
    dpo_better = serving["valid_ndcg@10"]["dpo"] > serving["valid_ndcg@10"]["sft"]
    assert check_results(result) == {
        "targets_not_in_training_part": True,
        "split_counts_add_up": True,
        "tokenizer_covers_sequences": True,
        "pairs_are_valid": True,
        "dpo_improves_on_sft": dpo_better,
        "predictions_cover_users": True,
    }
    assert serving["served"] == ("dpo" if dpo_better else "sft")
    for key in ("raw_csv", "sequences", "tokenizer", "item_profiles", "predictions", "evaluation"):
        assert (artifacts / key).is_dir(), key

    raw = materialization_metadata(result, "raw_csv")
    assert raw["users"] == 60 and raw["quarantined_rows"] == 0
    assert raw["interactions"] == sum(len(json.loads(r[1])) for r in tiny_rows())
    assert raw["length_histogram"].startswith("![history length histogram](data:image/png;base64,")

    seq = materialization_metadata(result, "sequences")
    assert seq["users_split"] + seq["users_too_short_train_only"] == 60

    metrics = read_metrics(data)
    assert metrics["protocol"] == "leave-one-out/full-ranking" and metrics["k"] == 10
    assert metrics["n_users"] == seq["users_split"]
    assert set(metrics["models"]["popularity"]) == {"hr@10", "ndcg@10", "mrr@10"}

    with (artifacts / "predictions" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["user_id"]) for r in rows] == list(range(60))
    for row in rows:
        items = json.loads(row["item_id"])
        assert len(set(items)) == 10 and all(isinstance(i, int) and 1 <= i <= 40 for i in items)


def test_test_top10_file_reproduces_the_metrics(tmp_path, tiny_csv, resources_for):
    run_graph(resources_for(tiny_csv))
    artifacts = tmp_path / "data" / "artifacts"
    split = read_split(artifacts / "sequences")
    target_of = dict(zip(split.full.user_ids.tolist(), split.test_target.tolist(), strict=True))
    hr = ndcg = mrr = 0.0
    with (artifacts / "evaluation" / "test_top10_popularity.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        top = json.loads(row["item_id"])
        target = target_of[int(row["user_id"])]
        if target in top:
            rank = top.index(target) + 1
            hr, ndcg, mrr = hr + 1, ndcg + 1 / math.log2(rank + 1), mrr + 1 / rank
    expected = read_metrics(tmp_path / "data")["models"]["popularity"]
    n = len(rows)
    assert n == int(split.splittable.sum())
    assert expected == pytest.approx({"hr@10": hr / n, "ndcg@10": ndcg / n, "mrr@10": mrr / n})


def test_exclude_history_never_recommends_owned_items(tmp_path, tiny_csv, resources_for):
    run_graph(resources_for(tiny_csv), predictions={"config": {"exclude_history": True}})
    artifacts = tmp_path / "data" / "artifacts"
    split = read_split(artifacts / "sequences")
    with (artifacts / "predictions" / "predictions.csv").open() as handle:
        for i, row in enumerate(csv.DictReader(handle)):
            assert not set(json.loads(row["item_id"])) & set(split.full[i].tolist())


def test_quarantined_rows_are_counted_in_metadata(tmp_path, resources_for):
    rows = tiny_rows() + [[1000, "[1, 2]", "['a']"], [1001, "oops", "['a']"]]
    result = run_graph(resources_for(write_rows(tmp_path / "in.csv", rows)), selection="raw_csv")
    meta = materialization_metadata(result, "raw_csv")
    assert meta["quarantined_rows"] == 2
    assert meta["quarantined/history_item_title"] == 1 and meta["quarantined/history_item_id"] == 1
    assert "| 62 | history_item_title | 1 titles for 2 item ids |" in meta["quarantine"]
    assert "| 63 | history_item_id | not a Python list literal" in meta["quarantine"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "nope.csv: file not found"),
        ("", "the file is empty"),
        (
            "user_id,history_item_id\n1,[1]\n",
            "line 1, field 'history_item_title': missing required",
        ),
    ],
)
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path, resources_for, content, expected):
    path = tmp_path / "nope.csv"
    if content is not None:
        path.write_text(content)
    result = run_graph(resources_for(path), selection="raw_csv", raise_on_error=False)
    assert not result.success
    assert expected in failure_message(result)
    assert not (tmp_path / "data" / "artifacts" / "raw_csv").exists()


def test_offline_without_input_says_how_to_point_at_a_file(tmp_path, resources_for):
    result = run_graph(resources_for(None), selection="raw_csv", raise_on_error=False)
    message = failure_message(result)
    assert "RECSYS_OFFLINE=1" in message and "RECSYS_RAW_CSV" in message


def test_a_failing_rerun_keeps_the_previous_artifacts(tmp_path, tiny_csv, resources_for):
    run_graph(resources_for(tiny_csv))
    before = (tmp_path / "data" / "artifacts" / "raw_csv" / "users.parquet").read_bytes()
    tiny_csv.write_text("garbage without the columns\n")
    assert not run_graph(resources_for(tiny_csv), raise_on_error=False).success
    after = (tmp_path / "data" / "artifacts" / "raw_csv" / "users.parquet").read_bytes()
    assert before == after


def test_popularity_counts_whole_training_parts_including_short_users(tmp_path, resources_for):
    # item 9 appears only in users too short to split (training only) and wins popularity
    rows = [[u, "[9, 1]", "['a', 'b']"] for u in range(3)]
    rows += [[10 + u, "[1, 2, 3, 4]", "['b', 'c', 'd', 'e']"] for u in range(2)]
    rows += [[20, str(list(range(20, 32))), str([f"t{i}" for i in range(20, 32)])]]
    result = run_graph(resources_for(write_rows(tmp_path / "in.csv", rows)))
    assert result.success
    artifacts = tmp_path / "data" / "artifacts"
    with (artifacts / "evaluation" / "test_top10_popularity.csv").open() as handle:
        top = [json.loads(r["item_id"]) for r in csv.DictReader(handle)]
    # training counts: 1 -> 5, 9 -> 3, 2 -> 2, 20..29 -> 1 (ties by smaller id); 3 and 4 are
    # only ever test/validation targets, so they count 0
    assert top[0] == [1, 9, 2, 20, 21, 22, 23, 24, 25, 26] and np.all(np.array(top) == top[0])
    assert read_metrics(tmp_path / "data")["n_users"] == 3


FAST_SFT = {"config": {"stage1_epochs": 1, "stage2_epochs": 1}}
MODELS = {"popularity", "transition", "sft", "dpo"}  # what evaluation ranks


def test_model_stages_on_tiny_data(tmp_path, tiny_csv, resources_for):
    result = run_graph(resources_for(tiny_csv), sft_checkpoint=FAST_SFT)
    assert result.success
    metrics = read_metrics(tmp_path / "data")
    assert set(metrics["models"]) == set(metrics["validation"]) == MODELS
    sft = materialization_metadata(result, "sft_checkpoint")
    # the leaderboard: every model on both target sets, best test NDCG@10 first
    evaluation = materialization_metadata(result, "evaluation")
    board = [record.data for record in evaluation["leaderboard"].records]
    assert [c.name for c in evaluation["leaderboard"].schema.columns] == [
        "model",
        *(f"{stage} {m}@10" for stage in ("valid", "test") for m in ("hr", "ndcg", "mrr")),
    ]
    assert {row["model"] for row in board} == MODELS
    assert [row["test ndcg@10"] for row in board] == sorted(
        (m["ndcg@10"] for m in metrics["models"].values()), reverse=True
    )
    for row in board:
        assert row["valid ndcg@10"] == metrics["validation"][row["model"]]["ndcg@10"]
        assert evaluation[f"{row['model']}/valid_mrr@10"] == row["valid mrr@10"]
    # the same validation protocol as training's model choice
    assert metrics["validation"]["sft"]["ndcg@10"] == pytest.approx(sft["valid/ndcg@10"])
    # 40 items + PAD/UNK/BOS/EOS, the CPU profile's size (64 wide, 2 layers, 2 heads, inner 256)
    shape = dict(
        vocab_size=44,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=256,
    )
    assert sft["variant"] == "sasrec_gate"
    assert sft["parameters"] == expected_parameters("sasrec_gate", shape)
    epochs = [record.data for record in sft["epochs"].records]
    assert [(e["stage"], e["epoch"]) for e in epochs] == [(1, 1), (2, 1)]
    assert [c.name for c in sft["epochs"].schema.columns][:3] == ["stage", "epoch", "train_loss"]
    assert epochs[-1]["valid_ndcg@10"] <= sft["valid/ndcg@10"] and sft["curves"].startswith("![")
    embeddings = materialization_metadata(result, "item_embeddings")
    assert embeddings["coverage"] == 1.0 and embeddings["dimensions"] == 64
    assert materialization_metadata(result, "faiss_index")["recall@10"] == 1.0
    folder = tmp_path / "data" / "artifacts" / "sft_checkpoint"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "training_report.json"):
        assert (folder / name).is_file(), name
    assert list((folder / "tensorboard").rglob("events.out.tfevents.*"))
    assert not any((tmp_path / "data" / "work" / "sft_checkpoint").iterdir())  # work cleaned up


def test_bad_model_config_fails_before_training(tmp_path, tiny_csv, resources_for):
    resources = resources_for(tiny_csv)
    run_graph(resources, selection="raw_csv*", sft_checkpoint=FAST_SFT)
    bad = {"config": {"hidden_size": 65, "num_attention_heads": 2}}
    result = run_graph(
        resources, selection="sft_checkpoint", raise_on_error=False, sft_checkpoint=bad
    )
    assert "hidden_size=65 is not divisible by num_attention_heads=2" in failure_message(result)
    assert not any((tmp_path / "data" / "work" / "sft_checkpoint").iterdir())  # no work started


def test_embeddings_for_another_catalog_fail_clearly(tmp_path, tiny_csv, resources_for):
    import numpy as np

    resources = resources_for(tiny_csv)
    run_graph(resources, selection="raw_csv*", sft_checkpoint=FAST_SFT)

    def drop_three_rows(folder):
        np.save(folder / "vectors.npy", np.load(folder / "vectors.npy")[:-3])

    republish(tmp_path / "data" / "artifacts", "item_embeddings", drop_three_rows)
    result = run_graph(
        resources, selection="sft_checkpoint", raise_on_error=False, sft_checkpoint=FAST_SFT
    )
    assert "37 rows for a catalog of 40 items" in failure_message(result)


@pytest.mark.parametrize("damage", ["deleted", "truncated", "overwritten"])
def test_broken_checkpoint_fails_clearly(tmp_path, tiny_csv, resources_for, damage):
    resources = resources_for(tiny_csv)
    run_graph(resources, selection="raw_csv*", sft_checkpoint=FAST_SFT)
    folder = (tmp_path / "data" / "artifacts" / "sft_checkpoint").resolve()
    weights = folder / "model.safetensors"
    if damage == "deleted":
        weights.unlink()
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    else:  # the same size, the bytes scrambled: only safetensors' own check can tell
        data = weights.read_bytes()
        weights.write_bytes(data[:8] + bytes(len(data) - 8))
    result = run_graph(resources, selection="faiss_index", raise_on_error=False)
    message = failure_message(result)
    if damage == "overwritten":
        assert "corrupt or truncated" in message and "Re-materialize" in message
    else:  # the version's manifest names what is gone, and the version: no other one is read
        assert f"artifact 'sft_checkpoint' version {folder.name} is damaged" in message
        assert "first model.safetensors" in message and "re-materialize" in message


def test_serve_best_keeps_sft_when_dpo_is_worse(tmp_path, tiny_csv, resources_for):
    # Plain DPO (no sft term) at a learning rate of 0.5 wrecks a well-trained model: measured
    # here, validation NDCG@10 0.42 -> 0.13. With the default sft term the same rate did not
    # reliably hurt (it helped on one CPU and hurt on another), so the test must not rely on it.
    sft = {"config": {"stage1_epochs": 1, "stage2_epochs": 4}}
    harmful = {
        "config": {
            "learning_rate": 0.5,
            "epochs": 3,
            "batch_size": 8,
            "loss_type": ["sigmoid"],
            "loss_weights": None,
            "serve_model": "best",
        }
    }
    result = run_graph(resources_for(tiny_csv), sft_checkpoint=sft, dpo_checkpoint=harmful)
    assert result.success  # a worse DPO model warns, it does not stop the pipeline
    dpo = materialization_metadata(result, "dpo_checkpoint")
    assert dpo["valid_after/ndcg@10"] < dpo["valid_before/ndcg@10"]
    assert dpo["served"] == "sft"
    assert check_results(result)["dpo_improves_on_sft"] is False
    assert materialization_metadata(result, "faiss_index")["model"] == "sft"
    assert materialization_metadata(result, "predictions")["model"] == "sft"
    assert set(read_metrics(tmp_path / "data")["models"]) == MODELS


def test_serve_model_can_be_forced(tmp_path, tiny_csv, resources_for):
    forced = {"config": {"serve_model": "dpo"}}
    result = run_graph(resources_for(tiny_csv), sft_checkpoint=FAST_SFT, dpo_checkpoint=forced)
    assert materialization_metadata(result, "predictions")["model"] == "dpo"


def test_served_model_names_the_checkpoint_every_reader_uses(
    tmp_path, tiny_csv, resources_for, instance
):
    from recsys_pipeline.ranking.retrieval import INFO_FILE

    resources = resources_for(tiny_csv)
    keep_sft = {"config": {"serve_model": "sft"}}
    first = run_graph(
        resources, instance=instance, sft_checkpoint=FAST_SFT, dpo_checkpoint=keep_sft
    )
    sft_version = materialization_metadata(first, "sft_checkpoint")["artifact_version"]
    served = materialization_metadata(first, "served_model")
    assert (served["model"], served["checkpoint"]) == ("sft", "sft_checkpoint")
    assert served["checkpoint_version"] == sft_version
    artifacts = tmp_path / "data" / "artifacts"
    index = json.loads((artifacts / "faiss_index" / INFO_FILE).read_text())
    assert index["model_version"] == sft_version
    assert index["served_model_version"] == served["artifact_version"]
    assert materialization_metadata(first, "evaluation")["served"] == "sft"
    first_sft = read_metrics(tmp_path / "data")["models"]["sft"]

    # a new SFT model that DPO has not been compared with yet: the compared one stays served,
    # under the same data version (nothing after it turns stale), and the leaderboard ranks it
    # as its own row beside the new SFT model
    retrained = {"config": {**FAST_SFT["config"], "seed": 7}}
    second = run_graph(
        resources,
        selection=["sft_checkpoint", "served_model", "evaluation"],
        instance=instance,
        sft_checkpoint=retrained,
    )
    assert materialization_metadata(second, "sft_checkpoint")["artifact_version"] != sft_version
    assert materialization_metadata(second, "served_model")["checkpoint_version"] == sft_version
    assert materialization_metadata(second, "served_model")["reused"] is True
    versions = [
        e.asset_materialization.tags["dagster/data_version"]
        for e in instance.fetch_materializations(dg.AssetKey("served_model"), limit=2).records
    ]
    assert len(versions) == 2 and versions[0] == versions[1]
    assert materialization_metadata(second, "evaluation")["served"] == "served"
    assert read_metrics(tmp_path / "data")["models"]["served"] == first_sft


def test_without_titles_the_frozen_stage_is_skipped(tmp_path, resources_for):
    from recsys_pipeline_tests.test_interaction_log import as_log, write_log

    events = [event[:3] for event in as_log(tiny_rows())]  # user, item, timestamp: no titles
    path = write_log(tmp_path / "log.csv", events, header=["user_id", "item_id", "timestamp"])
    result = run_graph(resources_for(path), selection="*sft_checkpoint", sft_checkpoint=FAST_SFT)
    assert materialization_metadata(result, "item_embeddings")["coverage"] == 0
    artifacts = tmp_path / "data" / "artifacts"
    report = json.loads((artifacts / "sft_checkpoint" / "training_report.json").read_text())
    assert [epoch["stage"] for epoch in report["epochs"]] == [2]  # stage 1 would freeze noise


def test_a_bad_pairs_file_fails_dpo_clearly(tmp_path, tiny_csv, resources_for):
    import pyarrow.parquet as pq

    resources = resources_for(tiny_csv)
    run_graph(resources, selection="raw_csv*", sft_checkpoint=FAST_SFT)

    def reject_the_chosen_item(folder):
        table = pq.read_table(folder / "pairs.parquet").to_pandas()
        table.loc[0, "rejected_item_id"] = table.loc[0, "chosen_item_id"]
        table.to_parquet(folder / "pairs.parquet")

    republish(tmp_path / "data" / "artifacts", "dpo_pairs", reject_the_chosen_item)
    result = run_graph(resources, selection="dpo_checkpoint", raise_on_error=False)
    assert "row 0, field 'rejected_item_id': equals chosen_item_id" in failure_message(result)


def string_rows() -> list[list[object]]:
    """tiny_rows with reviewer-style user ids and ASIN-style item ids."""
    rows = []
    for user, items, titles in tiny_rows():
        asins = [f"B{int(i):09d}" for i in json.loads(items)]
        rows.append([f"A{user:013d}", str(asins), titles])
    return rows


@pytest.mark.parametrize("form", ["course csv", "interaction log"])
def test_the_whole_graph_speaks_string_ids(tmp_path, resources_for, form):
    from recsys_pipeline.ranking.topk_files import read_top_k_csv
    from recsys_pipeline_tests.test_interaction_log import as_log, write_log

    rows = string_rows()
    path = (
        write_rows(tmp_path / "in.csv", rows)
        if form == "course csv"
        else write_log(tmp_path / "log.csv", as_log(rows))
    )
    result = run_graph(resources_for(path), sft_checkpoint=FAST_SFT)
    checks = check_results(result)
    del checks["dpo_improves_on_sft"]  # a warning either way
    assert result.success and all(checks.values()) and len(checks) == 5
    raw = materialization_metadata(result, "raw_csv")
    assert raw["format"] == ("sequences" if form == "course csv" else "log")
    assert raw["users"] == 60 and raw["items"] == 40
    artifacts = tmp_path / "data" / "artifacts"
    users, lists = read_top_k_csv(artifacts / "predictions" / "predictions.csv")
    assert sorted(users.tolist()) == sorted(r[0] for r in rows)  # the user's own ids
    catalog = {a for r in rows for a in json.loads(r[1].replace("'", '"'))}
    assert all(len(set(items)) == 10 and set(items) <= catalog for items in lists)
    _, tested = read_top_k_csv(artifacts / "evaluation" / "test_top10_dpo.csv")
    assert all(isinstance(i, str) for items in tested for i in items)
    assert read_metrics(tmp_path / "data")["models"]["sft"]["ndcg@10"] > 0
