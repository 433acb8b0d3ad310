"""Shared by the quality experiments: the real data through the pipeline's own functions, and one
training + test evaluation of our model."""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from recsys_pipeline.data.input_csv import parse_sequences_csv
from recsys_pipeline.data.split import Split
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.enrichment.text_vectors import EmbeddingSettings, build_item_vectors
from recsys_pipeline.settings import SHARED_SEQUENCES, SHARED_STEAM
from recsys_pipeline.training.settings import SFTSettings

RESULTS = Path(__file__).resolve().parent / "results"


def real_data() -> tuple[Split, ItemVocab, list[str]]:
    if not SHARED_SEQUENCES.is_file():
        sys.exit(f"needs the real data at {SHARED_SEQUENCES}")
    parsed = parse_sequences_csv(SHARED_SEQUENCES)
    vocab = ItemVocab(item_ids=np.array(sorted(parsed.titles)))
    return Split(full=parsed.histories), vocab, [parsed.titles[int(i)] for i in vocab.item_ids]


def offline_profiles(titles: list[str]) -> list[str]:
    """The item_profiles artifact as the pipeline builds it without network (Steam matches and
    rule-based facts): the enrichment assets materialized on the real data in a scratch folder."""
    import dagster as dg

    from recsys_pipeline.definitions import build_resources, defs
    from recsys_pipeline.enrichment.profiles import read_profiles
    from recsys_pipeline.enrichment.text_vectors import profile_texts
    from recsys_pipeline.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            {
                "RECSYS_DATA_DIR": tmp,
                "RECSYS_RAW_CSV": str(SHARED_SEQUENCES),
                "RECSYS_STEAM_CSV": str(SHARED_STEAM),
                "RECSYS_OFFLINE": "1",
                "RECSYS_PROFILE": "cpu",
            }
        )
        dg.materialize(defs.assets, selection="*item_profiles", resources=build_resources(settings))
        return profile_texts(titles, read_profiles(settings.artifacts_dir / "item_profiles"))


def embedding_settings(dims: int, **changes: object) -> EmbeddingSettings:
    """The item_embeddings settings of a model ``dims`` wide, with ``changes`` validated on top
    (the width follows the model, so it is not one of them)."""
    if "dimensions" in changes:
        raise ValueError("the text vectors' width is the model's hidden_size: change that instead")
    return EmbeddingSettings(**changes, dimensions=dims)


def item_vectors(split: Split, vocab: ItemVocab, titles: list[str], settings: EmbeddingSettings):
    """The item_embeddings vectors (of the titles, or under ``text: profile`` of the offline
    profiles), kept in experiments/results/ by a hash of their inputs: encoding 17k texts costs
    minutes on two cores, and every run asks for the same."""
    texts = offline_profiles(titles) if settings.text == "profile" else titles
    key = hashlib.sha256(
        json.dumps([settings.model_dump(mode="json"), texts]).encode()
        + split.train.items.tobytes()
        + split.train.offsets.tobytes()
    ).hexdigest()[:16]
    path = RESULTS / f"item_vectors-{key}.npy"
    if path.exists():
        return np.load(path)
    vectors = build_item_vectors(texts, split.train, vocab, settings, "cpu").vectors
    path.parent.mkdir(parents=True, exist_ok=True)
    # one partial file per process: two runs started side by side both encode, and each must
    # rename only its own complete file into place
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npy")
    np.save(partial, vectors)
    partial.replace(path)
    return vectors


def ensure_venv(folder: Path, pins: list[str]) -> Path:
    """A reference library's own virtual environment: torch 2.13.0 first (the CPU wheel on
    disk; any other version would download a CUDA build), then the library's pins."""
    python = folder / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, *pins], check=True)
    return python


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def spread(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.4f} ± {std:.4f}" if len(values) > 1 else f"{mean:.4f}"


def is_tie(a: list[float], b: list[float]) -> bool:
    """A difference of means smaller than two standard errors of that difference."""
    error = math.sqrt(sum(mean_std(v)[1] ** 2 / len(v) for v in (a, b)))
    return abs(statistics.mean(a) - statistics.mean(b)) < 2 * error


def served_ideas(model: object, split: Split, vocab: ItemVocab) -> dict:
    """Ideas that need no training, on a trained model: the seen items masked at scoring, and
    the blend with last-item transitions (weight chosen on the validation targets)."""
    from recsys_pipeline.ranking.blend import fit_blend
    from recsys_pipeline.ranking.protocol import evaluate_targets
    from recsys_pipeline.ranking.scoring import model_scorer

    def both(scorer: object, exclude_history: bool) -> dict:
        return {
            stage: evaluate_targets({"m": scorer}, split, vocab, exclude_history, stage)[
                "m"
            ].metrics()
            for stage in ("valid", "test")
        }

    scorer = model_scorer(model, vocab)
    blend = fit_blend(scorer, split, vocab)
    blend_test = evaluate_targets({"m": blend.scorer}, split, vocab)["m"].metrics()
    return {
        "seen masked": both(scorer, exclude_history=True),
        # the grid already ranked the validation targets with every weight
        "transition blend": {
            "weight": blend.weight,
            "grid": blend.grid,
            "valid": blend.grid[blend.weight],
            "test": blend_test,
        },
    }


def train_and_test(
    split: Split,
    vocab: ItemVocab,
    vectors: np.ndarray | None,
    settings: SFTSettings,
    dpo: object | None = None,
    ideas: bool = False,
    test: bool = True,
) -> dict:
    """Train with the pipeline's SFT code (then DPO, when given settings for it); test metrics
    under the pipeline's protocol, of the model the pipeline would serve (best on validation);
    with ``ideas``, also those of ``served_ideas`` on the served model. Without ``test``, only
    the SFT model's validation (a search must not see the test targets)."""
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
            "averaged": report.averaged,  # the mean checkpoints' own validation, served or not
        }
        if not test:
            return result
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
        result["served_valid"] = result["dpo_valid" if served == dpo_dir else "valid"]
        if ideas:
            result["ideas"] = served_ideas(model, split, vocab)
    return result


def pipeline_dpo_settings(**changes: object) -> object:
    """The DPO settings a default dpo_checkpoint run uses, with ``changes`` validated on top."""
    from recsys_pipeline.training.settings import DPOSettings

    return DPOSettings(**{**DPOSettings().model_dump(), **changes})


def cpu_settings(**changes: object) -> SFTSettings:
    from recsys_pipeline.settings import PROFILES

    return SFTSettings(**{**PROFILES["cpu"].sft.model_dump(), **changes})


__all__ = [
    "ensure_venv",
    "is_tie",
    "mean_std",
    "spread",
    "real_data",
    "statistics",
    "embedding_settings",
    "item_vectors",
    "offline_profiles",
    "train_and_test",
    "cpu_settings",
    "pipeline_dpo_settings",
]
