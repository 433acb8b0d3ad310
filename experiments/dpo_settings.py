"""Experiment: DPO settings on top of one SFT model, judged on the validation targets.

Each row materializes the pipeline's own stages in the experiments' workspace (the profile's SFT
model, reused from one row to the next by its data version; dpo_pairs with the row's mining and
dpo_checkpoint with its DPO settings; served_model; evaluation) and reads back DPO's validation
NDCG@10 before and after, the DPO model's test NDCG@10 and HR@10 from the evaluation, its reward
margin and accuracy, and the row's seconds. The DPO default was chosen from this table by
validation. The rows are cached in experiments/results/dpo_settings.json with their provenance.

    .venv/bin/python -m experiments.dpo_settings [--rows NAME ...] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from experiments.common import (
    RESULTS,
    cpu_settings,
    embedding_settings,
    experiment_data,
    materialized_run,
    pipeline_dpo_settings,
)
from recsys_pipeline.monitoring.provenance import command_line, save_result
from recsys_pipeline.training.negatives import MiningSettings
from recsys_pipeline.training.settings import DPOSettings

CACHE = RESULTS / "dpo_settings.json"

SIGMOID = dict(loss_type=["sigmoid"], loss_weights=None)
DEFAULT = DPOSettings()
# name -> (mining changes, DPO settings): the first screen (plain DPO against DPO + the chosen
# item's likelihood), then the default's neighbours, and the sft term alone as the control that
# tells the preference's share of the gain from more likelihood training on the last items
ROWS: dict[str, tuple[dict, DPOSettings]] = {
    "sigmoid, beta 0.1, lr 1e-4": ({}, DPOSettings(**SIGMOID)),
    "sigmoid, beta 0.05, lr 5e-5": ({}, DPOSettings(**SIGMOID, beta=0.05, learning_rate=5e-5)),
    "ipo, beta 0.1": ({}, DPOSettings(loss_type=["ipo"], loss_weights=None)),
    "sigmoid + sft (default)": ({}, DEFAULT),
    "sigmoid, 3 negatives a positive": ({"negatives_per_positive": 3}, DPOSettings(**SIGMOID)),
    "sft term alone": ({}, DPOSettings(loss_type=["sft"], loss_weights=None)),
    "sigmoid + sft, beta 0.2": ({}, pipeline_dpo_settings(beta=0.2)),
    "sigmoid + sft, beta 0.05": ({}, pipeline_dpo_settings(beta=0.05)),
    "sigmoid + sft, weights 1 : 0.5": ({}, pipeline_dpo_settings(loss_weights=[1, 0.5])),
    "sigmoid + sft, weights 1 : 2": ({}, pipeline_dpo_settings(loss_weights=[1, 2])),
    "sigmoid + sft, lr 2e-4": ({}, pipeline_dpo_settings(learning_rate=2e-4)),
    "sigmoid + sft, 2 epochs": ({}, pipeline_dpo_settings(epochs=2.0)),
}


def row(name: str, result: dict, seconds: float) -> dict[str, str]:
    """One table row from a materialized run's figures."""
    rewards = result["dpo_rewards"]
    return {
        "DPO setting": name,
        "pairs": f"{result['dpo_pairs']:,}",
        "valid NDCG@10 before": f"{result['valid']['ndcg@10']:.4f}",
        "valid NDCG@10 after": f"{result['dpo_valid']['ndcg@10']:.4f}",
        "test NDCG@10": f"{result['dpo_test']['ndcg@10']:.4f}",
        "test HR@10": f"{result['dpo_test']['hr@10']:.4f}",
        "reward margin": f"{rewards['rewards/margins']:.3f}",
        "reward accuracy": f"{rewards['rewards/accuracies']:.2f}",
        "seconds": f"{seconds:.0f}",
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = experiment_data()
    sft = cpu_settings()
    embedding = embedding_settings(sft.hidden_size)
    rows = []
    for name in args.rows:
        mining, settings = ROWS[name]
        started = time.perf_counter()
        result = materialized_run(
            data.pipeline, sft, embedding, dpo=settings, mining=MiningSettings(**mining)
        )
        rows.append(row(name, result, time.perf_counter() - started))
        print(" | ".join(rows[-1].values()), flush=True)
    save_result(
        CACHE,
        command_line("experiments.dpo_settings", argv),
        {"DPO settings from the profile's SFT model (its seed)": rows},
        threads=args.threads,
    )


if __name__ == "__main__":
    main()
