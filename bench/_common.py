"""Shared by the benchmarks: the real data through the pipeline's own functions, and one
training + test evaluation of our model."""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_CSV = REPO.parent / "shared" / "data" / "amazon-games" / "sequences.csv"
sys.path.insert(0, str(REPO))

from recsys_pipeline.data.input_csv import parse_sequences_csv  # noqa: E402
from recsys_pipeline.data.split import Split  # noqa: E402
from recsys_pipeline.data.vocab import ItemVocab  # noqa: E402
from recsys_pipeline.enrichment.text_vectors import (  # noqa: E402
    EmbeddingSettings,
    build_item_vectors,
)
from recsys_pipeline.training.settings import SFTSettings  # noqa: E402


def real_data() -> tuple[Split, ItemVocab, list[str]]:
    if not SHARED_CSV.is_file():
        sys.exit(f"needs the real data at {SHARED_CSV}")
    parsed = parse_sequences_csv(SHARED_CSV)
    vocab = ItemVocab(item_ids=np.array(sorted(parsed.titles)))
    return Split(full=parsed.histories), vocab, [parsed.titles[int(i)] for i in vocab.item_ids]


def title_vectors(split: Split, vocab: ItemVocab, titles: list[str], dims: int) -> np.ndarray:
    settings = EmbeddingSettings(dimensions=dims)
    return build_item_vectors(titles, split.train, vocab, settings, "cpu").vectors


def train_and_test(
    split: Split,
    vocab: ItemVocab,
    vectors: np.ndarray | None,
    settings: SFTSettings,
    dpo: object | None = None,
) -> dict:
    """Train with the pipeline's SFT code (then DPO, when given settings for it); test metrics
    under the pipeline's protocol, of the model the pipeline would serve (best on validation)."""
    from recsys_pipeline.models.checkpoints import load_checkpoint
    from recsys_pipeline.ranking.protocol import evaluate_targets
    from recsys_pipeline.ranking.scoring import item_output_vectors, model_scorer
    from recsys_pipeline.training.dpo import choose_served, train_dpo
    from recsys_pipeline.training.negatives import MiningSettings
    from recsys_pipeline.training.pairs import build_pairs
    from recsys_pipeline.training.sft import train_sft
    from recsys_pipeline.training.validation import RankingEvalSet

    log = lambda line: print("   ", line, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        sft_dir, dpo_dir = Path(tmp) / "sft", Path(tmp) / "dpo"
        report = train_sft(
            split.train,
            *split.validation(),
            vocab,
            settings,
            Path(tmp) / "work",
            sft_dir,
            vectors,
            log=log,
        )
        result = {
            "valid": report.best_metrics,
            "epochs": len(report.epochs),
            "median_epoch_seconds": report.train_seconds / max(1, len(report.epochs)),
            "input_tokens_per_s": report.tokens_per_s,
            "targets_per_s": report.targets_per_s,
            "train_seconds": report.train_seconds,
            "parameters": report.parameters,
        }
        scorer = model_scorer(load_checkpoint(sft_dir), vocab)
        result["sft_test"] = evaluate_targets({"m": scorer}, split, vocab)["m"].metrics()
        served = sft_dir
        if dpo is not None:
            sft = load_checkpoint(sft_dir)
            pairs = build_pairs(
                split,
                vocab,
                item_output_vectors(sft, vocab).numpy(),
                settings.max_history_length,
                MiningSettings(),
            )
            validation = RankingEvalSet(*split.validation(), vocab)
            dpo_report = train_dpo(
                sft_dir, pairs, vocab, validation, dpo, Path(tmp) / "dpo-work", dpo_dir, log=log
            )
            choice = choose_served(
                "best", dpo_report.valid_before["ndcg@10"], dpo_report.valid_after["ndcg@10"]
            )
            result.update(dpo_valid=dpo_report.valid_after, served=choice)
            served = dpo_dir if choice == "dpo" else sft_dir
        model = load_checkpoint(served)
        test = evaluate_targets({"m": model_scorer(model, vocab)}, split, vocab)
        result["test"] = test["m"].metrics()
    return result


def pipeline_dpo_settings() -> object:
    """The DPO settings a default dpo_checkpoint run uses."""
    from recsys_pipeline.training.settings import DPOSettings

    return DPOSettings()


def cpu_settings(**changes: object) -> SFTSettings:
    from recsys_pipeline.settings import PROFILES

    return SFTSettings(**{**PROFILES["cpu"].sft.model_dump(), **changes})


__all__ = [
    "real_data",
    "statistics",
    "title_vectors",
    "train_and_test",
    "cpu_settings",
    "pipeline_dpo_settings",
]
