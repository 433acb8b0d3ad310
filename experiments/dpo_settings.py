"""Benchmark: DPO settings on top of one SFT model, judged on the validation targets.

Takes the artifacts folder of a materialized pipeline (sequences, tokenizer, sft_checkpoint; e.g.
after `make run`: data/artifacts), mines pairs and trains DPO for each setting from the same SFT
checkpoint, and prints validation NDCG@10 before/after, test NDCG@10 and HR@10 of the DPO model,
reward margins/accuracies and seconds. The DPO default was chosen from this table by validation.

    .venv/bin/python -m experiments.dpo_settings --artifacts data/artifacts [--rows NAME ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from experiments.common import pipeline_dpo_settings
from recsys_pipeline.data.split import read_split
from recsys_pipeline.data.vocab import load_vocab
from recsys_pipeline.models.checkpoints import load_checkpoint
from recsys_pipeline.ranking.protocol import evaluate_targets
from recsys_pipeline.ranking.scoring import item_output_vectors, model_scorer
from recsys_pipeline.training.dpo import reward_summary, train_dpo
from recsys_pipeline.training.negatives import MiningSettings
from recsys_pipeline.training.pairs import build_pairs
from recsys_pipeline.training.settings import DPOSettings
from recsys_pipeline.training.validation import RankingEvalSet

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    args = parser.parse_args()
    split = read_split(args.artifacts / "sequences")
    vocab = load_vocab(args.artifacts / "tokenizer")
    sft_dir = args.artifacts / "sft_checkpoint"
    sft = load_checkpoint(sft_dir)
    max_length = sft.config.max_history_length
    vectors = item_output_vectors(sft, vocab).numpy()
    validation = RankingEvalSet(*split.validation(), vocab)
    print(
        "| DPO setting | pairs | valid NDCG@10 before → after | test NDCG@10 | test HR@10 | "
        "reward margin | reward accuracy | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.rows:
        mining, settings = ROWS[name]
        started = time.perf_counter()
        pairs = build_pairs(split, vocab, vectors, max_length, MiningSettings(**mining))
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            report = train_dpo(
                sft_dir,
                pairs,
                vocab,
                validation,
                settings,
                Path(tmp) / "work",
                out,
                log=lambda line: None,
            )
            scorer = model_scorer(load_checkpoint(out), vocab)
            test = evaluate_targets({"m": scorer}, split, vocab)["m"].metrics()
        rewards = reward_summary(report.history)
        print(
            f"| {name} | {len(pairs):,} | {report.valid_before['ndcg@10']:.4f} → "
            f"{report.valid_after['ndcg@10']:.4f} | {test['ndcg@10']:.4f} | {test['hr@10']:.4f} | "
            f"{rewards['rewards/margins']:.3f} | {rewards['rewards/accuracies']:.2f} | "
            f"{time.perf_counter() - started:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
