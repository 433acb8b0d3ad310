"""Data-parallel training under torchrun (2 CPU processes, gloo), launched through Dagster Pipes."""

from __future__ import annotations

import json

import pytest
import torch

from recsys_pipeline_tests.conftest import tiny_rows, write_rows
from recsys_pipeline_tests.helpers import materialization_metadata, run_graph

SFT = {"stage1_epochs": 1, "stage2_epochs": 4, "batch_size": 32, "patience": 10}


@pytest.fixture
def medium(tmp_path):
    return write_rows(tmp_path / "in.csv", tiny_rows(n_users=400, n_items=50))


def train(resources, processes: int):
    config = {"config": {**SFT, "num_processes": processes}}
    return run_graph(resources, selection="sft_checkpoint", sft_checkpoint=config)


def test_two_gloo_processes_match_one(tmp_path, medium, resources_for, capfd):
    resources = resources_for(medium)
    run_graph(
        resources,
        selection="raw_csv*",
        sft_checkpoint={"config": {"stage1_epochs": 0, "stage2_epochs": 1}},
    )
    single = materialization_metadata(train(resources, 1), "sft_checkpoint")
    capfd.readouterr()
    result = train(resources, 2)
    logged = capfd.readouterr().err
    double = materialization_metadata(result, "sft_checkpoint")
    folder = tmp_path / "data" / "artifacts" / "sft_checkpoint"
    report = json.loads((folder / "training_report.json").read_text())
    assert [(e["stage"], e["epoch"]) for e in report["epochs"]] == [(1, 1)] + [
        (2, e) for e in range(1, 5)
    ]
    from recsys_pipeline.models.checkpoints import load_checkpoint

    assert load_checkpoint(folder).config.variant == "sasrec_gate"
    assert abs(double["valid/ndcg@10"] - single["valid/ndcg@10"]) < 0.05
    assert double["valid/ndcg@10"] > 0.1  # it learned (popularity is far lower here)
    # the metadata came from the report the torchrun processes sent back through Pipes, and so
    # did their per-epoch log lines
    assert len(double["epochs"].records) == len(single["epochs"].records) == 5
    assert "torchrun --standalone --nproc_per_node=2" in logged and "stage 2, epoch 4" in logged


def test_dpo_under_torchrun(tmp_path, medium, resources_for):
    resources = resources_for(medium)
    fast = {"config": {"stage1_epochs": 1, "stage2_epochs": 2}}
    run_graph(resources, selection="raw_csv*", sft_checkpoint=fast)
    dpo = {"config": {"num_processes": 2, "batch_size": 32, "learning_rate": 1e-3}}
    result = run_graph(resources, selection="dpo_checkpoint", dpo_checkpoint=dpo)
    meta = materialization_metadata(result, "dpo_checkpoint")
    assert meta["steps"] > 0 and meta["served"] in {"sft", "dpo"}
    from recsys_pipeline.models.checkpoints import load_checkpoint

    artifacts = tmp_path / "data" / "artifacts"
    sft = load_checkpoint(artifacts / "sft_checkpoint").state_dict()
    tuned = load_checkpoint(artifacts / "dpo_checkpoint").state_dict()
    assert sft.keys() == tuned.keys()
    assert any(not torch.equal(sft[k], tuned[k]) for k in sft)  # the processes trained it
