"""Shared by the benchmarks: the real data through the pipeline's own functions, and one
training + test evaluation of our model."""

from __future__ import annotations

import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_CSV = REPO.parent / "shared" / "data" / "amazon-games" / "sequences.csv"
sys.path.insert(0, str(REPO))

from recsys_pipeline.item_text import BUNDLED_MODEL, build_item_vectors  # noqa: E402
from recsys_pipeline.item_vocab import ItemVocab  # noqa: E402
from recsys_pipeline.raw_input import parse_sequences_csv  # noqa: E402
from recsys_pipeline.split import Split  # noqa: E402
from recsys_pipeline.training.config import SFTSettings  # noqa: E402


def real_data() -> tuple[Split, ItemVocab, list[str]]:
    if not SHARED_CSV.is_file():
        sys.exit(f"needs the real data at {SHARED_CSV}")
    parsed = parse_sequences_csv(SHARED_CSV)
    vocab = ItemVocab(item_ids=np.array(sorted(parsed.titles)))
    return Split(full=parsed.histories), vocab, [parsed.titles[int(i)] for i in vocab.item_ids]


def title_vectors(split: Split, vocab: ItemVocab, titles: list[str], dims: int) -> np.ndarray:
    return build_item_vectors(titles, split.train, vocab, BUNDLED_MODEL, dims).vectors


def train_and_test(
    split: Split,
    vocab: ItemVocab,
    vectors: np.ndarray | None,
    settings: SFTSettings,
    **model_overrides,
) -> dict:
    """Train with the pipeline's SFT code; test metrics under the pipeline's protocol."""
    from recsys_pipeline.checkpoints import load_checkpoint
    from recsys_pipeline.evaluation import evaluate_on_test
    from recsys_pipeline.scoring import model_scorer
    from recsys_pipeline.training.sft import train_sft

    has = split.splittable
    with tempfile.TemporaryDirectory() as tmp:
        report = train_sft(
            split.train,
            split.inputs_for("valid").rows_where(has),
            split.valid_target[has],
            vocab,
            settings,
            Path(tmp) / "work",
            Path(tmp) / "out",
            vectors,
            log=lambda line: print("   ", line, flush=True),
        )
        model = load_checkpoint(Path(tmp) / "out")
        test = evaluate_on_test(
            {"m": model_scorer(model, vocab, settings.max_length)}, split, vocab
        )
    epoch_seconds = report.train_seconds / max(1, len(report.epochs))
    return {
        "valid": report.best_metrics,
        "test": test["m"].metrics(),
        "epochs": len(report.epochs),
        "median_epoch_seconds": epoch_seconds,
        "input_tokens_per_s": report.tokens_per_s,
        "targets_per_s": report.targets_per_s,
        "train_seconds": report.train_seconds,
        "parameters": report.parameters,
    }


def cpu_settings(**changes: object) -> SFTSettings:
    from recsys_pipeline.settings import PROFILES

    return replace(PROFILES["cpu"].sft, **changes)


__all__ = ["real_data", "statistics", "title_vectors", "train_and_test", "cpu_settings"]
