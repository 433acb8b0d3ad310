"""The experiments measure what the pipeline serves: their runs materialize the asset graph
in-process (experiments/common.py), so on tiny data the default run of experiments/references.py
gives the same SFT and DPO models, the same served choice and the same metrics as a plain
materialization of the graph with the CPU profile (what ``make run`` builds)."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import torch

from experiments import dpo_settings
from experiments.common import cpu_settings, embedding_settings, materialized_run, pipeline_data
from experiments.references import SERVED, runner
from recsys_pipeline.assets.in_process import Pipeline
from recsys_pipeline.data.artifacts import ArtifactStore
from recsys_pipeline.data.split import read_split
from recsys_pipeline.data.vocab import load_titles, load_vocab
from recsys_pipeline.definitions import build_definitions, build_resources
from recsys_pipeline.models.checkpoints import load_checkpoint
from recsys_pipeline.models.served import ServedModel
from recsys_pipeline.settings import PROFILES, load_settings
from recsys_pipeline.training.negatives import MiningSettings

SFT_ROW = "ours, SFT (CPU profile)"


def materialize_plainly(tmp_path, csv, instance) -> ArtifactStore:
    """The whole graph, no run config: the CPU profile's defaults, offline."""
    settings = load_settings(
        {
            "RECSYS_DATA_DIR": str(tmp_path / "plain"),
            "RECSYS_RAW_CSV": str(csv),
            "RECSYS_OFFLINE": "1",
            "RECSYS_PROFILE": "cpu",
        }
    )
    definitions = build_definitions(settings)
    result = dg.materialize(
        [*definitions.assets, *definitions.asset_checks],
        resources=build_resources(settings),
        instance=instance,
    )
    assert result.success
    return ArtifactStore(settings.artifacts_dir)


def same_tensors(a, b) -> bool:
    left, right = load_checkpoint(a).state_dict(), load_checkpoint(b).state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def test_the_experiments_default_run_gives_the_pipelines_models_and_metrics(
    tmp_path, tiny_csv, instance
):
    data = pipeline_data(Pipeline(tiny_csv, tmp_path / "experiment"))
    store = ArtifactStore(tmp_path / "experiment" / "data" / "artifacts")
    seed = PROFILES["cpu"].sft.seed  # the seed a run without config trains with
    rows = runner("ours")(*data, seed=seed, threads=1)
    run = rows[SERVED]["run"]
    ran = {key: store.version(key, v) for key, v in run["artifact_versions"].items()}

    plain = materialize_plainly(tmp_path, tiny_csv, instance)
    # the experiments read the data the way the pipeline's assets build it
    assert data.vocab.item_ids.tolist() == load_vocab(plain.path("tokenizer")).item_ids.tolist()
    assert data.titles == load_titles(plain.path("tokenizer"))
    split = read_split(plain.path("sequences"))
    for part in ("user_ids", "items", "offsets"):
        assert np.array_equal(getattr(data.split.full, part), getattr(split.full, part)), part
    assert np.array_equal(data.split.valid_target, split.valid_target)
    assert np.array_equal(data.split.test_target, split.test_target)

    # the same models, bit for bit, and the same choice of the served one
    for key in ("sft_checkpoint", "dpo_checkpoint"):
        assert same_tensors(ran[key], plain.path(key)), key
    served, plain_served = (
        ServedModel.read(f) for f in (ran["served_model"], plain.path("served_model"))
    )
    assert (served.model, served.rule, served.valid_ndcg) == (
        plain_served.model,
        plain_served.rule,
        plain_served.valid_ndcg,
    )
    assert run["served"] == plain_served.model

    # the same metrics: the experiment's rows are the plain evaluation's figures
    metrics = json.loads((plain.path("evaluation") / "metrics.json").read_text())
    assert json.loads((ran["evaluation"] / "metrics.json").read_text()) == metrics
    report = json.loads((plain.path("sft_checkpoint") / "training_report.json").read_text())
    assert rows[SFT_ROW] == {"valid": report["best_metrics"], "test": metrics["models"]["sft"]}
    assert rows[SERVED]["test"] == metrics["models"][plain_served.model]
    dpo = json.loads((plain.path("dpo_checkpoint") / "dpo_report.json").read_text())
    served_valid = dpo["valid_after"] if plain_served.model == "dpo" else report["best_metrics"]
    assert rows[SERVED]["valid"] == served_valid and run["dpo_valid"] == dpo["valid_after"]
    assert run["epochs"] == len(report["epochs"]) and run["parameters"] == report["parameters"]
    assert run["dpo_test"] == metrics["models"]["dpo"] and run["dpo_pairs"] == dpo["pairs"]

    # an SFT-only run (the ablation's rows) reuses the same model, scored as the evaluation does
    (sft_row,) = runner("sft")(*data, seed=seed, threads=1).values()
    assert "sft_checkpoint" in sft_row["run"]["reused"]
    assert sft_row["run"]["artifact_versions"]["sft_checkpoint"] == ran["sft_checkpoint"].name
    assert sft_row["test"] == metrics["models"]["sft"]

    # a row of the DPO-settings experiment: the same SFT model reused, dpo_pairs mined with the
    # row's settings, and the row's figures those of the run's DPO report and evaluation
    mining, settings = dpo_settings.ROWS["sigmoid, 3 negatives a positive"]
    sft = cpu_settings()
    result = materialized_run(
        data.pipeline,
        sft,
        embedding_settings(sft.hidden_size),
        dpo=settings,
        mining=MiningSettings(**mining),
    )
    assert "sft_checkpoint" in result["reused"]
    assert result["artifact_versions"]["sft_checkpoint"] == ran["sft_checkpoint"].name
    assert result["dpo_pairs"] > dpo["pairs"]  # three negatives a positive instead of one
    mined = store.version("dpo_checkpoint", result["artifact_versions"]["dpo_checkpoint"])
    row = dpo_settings.row("three negatives", result, seconds=1.0)
    assert row["pairs"] == f"{json.loads((mined / 'dpo_report.json').read_text())['pairs']:,}"
    assert row["test NDCG@10"] == f"{result['dpo_test']['ndcg@10']:.4f}"
