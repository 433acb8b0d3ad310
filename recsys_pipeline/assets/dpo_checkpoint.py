"""dpo_pairs and dpo_checkpoint: preference tuning of the SFT model, and the choice of the model
that is served (best on the validation targets, unless configured)."""

import json
import shutil
from dataclasses import fields

import dagster as dg
import numpy as np

from recsys_pipeline.assets._launch import train_into
from recsys_pipeline.assets._loading import load_model
from recsys_pipeline.assets._metadata import markdown_table
from recsys_pipeline.assets.split import sequences
from recsys_pipeline.assets.training import sft_checkpoint, work_dir_for
from recsys_pipeline.assets.vocab import tokenizer
from recsys_pipeline.compute import TRAINING_TAGS
from recsys_pipeline.negatives import MiningSettings
from recsys_pipeline.resources import RecsysStorage
from recsys_pipeline.training.config import DPOSettings

SERVING_FILE = "serving.json"
EXAMPLES_SHOWN = 5
_DPO = DPOSettings()
_MINING = MiningSettings()


class DPOPairsConfig(dg.Config):
    hard_share: float = _MINING.hard_share  # share of negatives among the nearest items
    hard_ranks: int = _MINING.hard_ranks  # "nearest" = this many most similar candidates
    easy_ranks: int = _MINING.easy_ranks  # easy negatives come from ranks hard_ranks+1 .. this
    negatives_per_positive: int = _MINING.negatives_per_positive
    seed: int = _MINING.seed


@dg.asset(
    group_name="preference", kinds={"parquet", "faiss"}, deps=[sft_checkpoint, sequences, tokenizer]
)
def dpo_pairs(
    context: dg.AssetExecutionContext, config: DPOPairsConfig, storage: RecsysStorage
) -> dg.MaterializeResult:
    """Per training user: prompt = history before the last training item, chosen = that item,
    rejected = a negative mined by cosine similarity over the SFT item embeddings."""
    from recsys_pipeline.item_vocab import load_titles, load_vocab
    from recsys_pipeline.preference_pairs import build_pairs, write_pairs
    from recsys_pipeline.scoring import item_output_vectors
    from recsys_pipeline.split import read_max_history_length, read_split

    artifacts = storage.artifacts()
    vocab = load_vocab(artifacts.path("tokenizer"))
    split = read_split(artifacts.path("sequences"))
    try:
        mining = MiningSettings(**config.model_dump())
    except ValueError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    vectors = item_output_vectors(load_model(artifacts.path("sft_checkpoint")), vocab).numpy()
    max_length = read_max_history_length(artifacts.path("sequences"))
    pairs = build_pairs(split, vocab, vectors, max_length, mining)
    with artifacts.writing("dpo_pairs") as folder:
        write_pairs(pairs, folder)

    title_of = dict(
        zip(vocab.item_ids.tolist(), load_titles(artifacts.path("tokenizer")), strict=True)
    )
    examples = [
        (
            " → ".join(title_of[i] for i in pairs.prompts[r].tolist()[-3:]),
            title_of[int(pairs.chosen[r])],
            f"{title_of[int(pairs.rejected[r])]} ({pairs.kind[r]})",
        )
        for r in range(min(EXAMPLES_SHOWN, len(pairs)))
    ]
    shares = {
        kind: float((pairs.kind == kind).mean()) if len(pairs) else 0.0
        for kind in ("hard", "easy", "random")
    }
    context.log.info(f"{len(pairs)} pairs; negative kinds {shares}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(pairs),
            "pairs": len(pairs),
            "users": len(np.unique(pairs.user_ids)),
            "hard_share": shares["hard"],
            "easy_share": shares["easy"],
            "random_share": shares["random"],
            "examples": markdown_table(["prompt (last 3)", "chosen", "rejected"], examples),
        }
    )


@dg.asset_check(asset=dpo_pairs, blocking=True, additional_deps=[tokenizer])
def pairs_are_valid(storage: RecsysStorage) -> dg.AssetCheckResult:
    """Rejected never equals chosen; every id is in the vocabulary (read_pairs validates)."""
    from recsys_pipeline.item_vocab import load_vocab
    from recsys_pipeline.preference_pairs import PairsFileError, read_pairs

    artifacts = storage.artifacts()
    try:
        pairs = read_pairs(artifacts.path("dpo_pairs"), load_vocab(artifacts.path("tokenizer")))
    except PairsFileError as exc:
        return dg.AssetCheckResult(passed=False, metadata={"error": str(exc)})
    return dg.AssetCheckResult(passed=True, metadata={"pairs": len(pairs)})


class DPOConfig(dg.Config):
    beta: float = _DPO.beta
    # TRL loss names, e.g. sigmoid, ipo, or sigmoid + sft
    loss_type: list[str] = list(_DPO.loss_type)
    loss_weights: list[float] | None = list(_DPO.loss_weights) if _DPO.loss_weights else None
    learning_rate: float = _DPO.learning_rate
    epochs: float = _DPO.epochs
    batch_size: int = _DPO.batch_size
    warmup_ratio: float = _DPO.warmup_ratio
    weight_decay: float = _DPO.weight_decay
    save_steps: int = _DPO.save_steps
    seed: int = _DPO.seed
    serve_model: str = "best"  # "best" (higher validation NDCG@10), "sft" or "dpo"
    num_processes: int = 1  # > 1: torchrun data-parallel processes (GPUs, or gloo on CPU)

    def settings(self) -> DPOSettings:
        names = {f.name for f in fields(DPOSettings)}
        return DPOSettings(**{k: v for k, v in self.model_dump().items() if k in names})


def choose_served(rule: str, sft_ndcg: float, dpo_ndcg: float) -> str:
    if rule in ("sft", "dpo"):
        return rule
    if rule != "best":
        raise ValueError(f"serve_model={rule!r}: use 'best', 'sft' or 'dpo'")
    return "dpo" if dpo_ndcg > sft_ndcg else "sft"


@dg.asset(
    group_name="preference",
    kinds={"pytorch", "huggingface"},
    deps=[sft_checkpoint, dpo_pairs, sequences, tokenizer],
    op_tags=TRAINING_TAGS,
    pool="gpu",
)
def dpo_checkpoint(
    context: dg.AssetExecutionContext, config: DPOConfig, storage: RecsysStorage
) -> dg.MaterializeResult:
    """The SFT model after DPO (TRL, frozen SFT reference), with validation metrics before and
    after, and the serving decision (serving.json) that faiss_index and predictions follow."""

    from recsys_pipeline.item_vocab import load_vocab
    from recsys_pipeline.preference_pairs import PairsFileError, read_pairs
    from recsys_pipeline.training.dpo import DPOReport, reward_summary, run_request

    artifacts = storage.artifacts()
    inputs = [artifacts.path(k) for k in ("sft_checkpoint", "dpo_pairs", "sequences", "tokenizer")]
    vocab = load_vocab(inputs[3])
    try:
        settings = config.settings()
        choose_served(config.serve_model, 0.0, 0.0)
        pairs = read_pairs(inputs[1], vocab)  # a bad pairs file fails here, before any work
    except (ValueError, PairsFileError) as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    load_model(inputs[0])  # a broken SFT checkpoint fails here, before any work
    work_dir = work_dir_for(storage, "dpo_checkpoint", settings, inputs)
    with artifacts.writing("dpo_checkpoint") as folder:
        report = DPOReport.from_dict(
            train_into(
                context,
                folder,
                "recsys_pipeline.training.dpo",
                {
                    "sft_checkpoint": inputs[0],
                    "dpo_pairs": inputs[1],
                    "sequences": inputs[2],
                    "tokenizer": inputs[3],
                },
                settings,
                work_dir,
                config.num_processes,
                run_request,
            )
        )
        (folder / "dpo_report.json").write_text(report.to_json())
        served = choose_served(
            config.serve_model, report.valid_before["ndcg@10"], report.valid_after["ndcg@10"]
        )
        serving = {
            "served": served,
            "rule": config.serve_model,
            "valid_ndcg@10": {
                "sft": report.valid_before["ndcg@10"],
                "dpo": report.valid_after["ndcg@10"],
            },
        }
        (folder / SERVING_FILE).write_text(json.dumps(serving, indent=2))
    shutil.rmtree(work_dir, ignore_errors=True)
    context.log.info(f"serving {served} ({config.serve_model}): {serving['valid_ndcg@10']}")
    rows = [
        (name, m["hr@10"], m["ndcg@10"], m["mrr@10"])
        for name, m in (("SFT (before)", report.valid_before), ("DPO (after)", report.valid_after))
    ]
    return dg.MaterializeResult(
        metadata={
            "served": served,
            "serve_model": config.serve_model,
            "validation": markdown_table(["model", "HR@10", "NDCG@10", "MRR@10"], rows),
            "valid_before/ndcg@10": report.valid_before["ndcg@10"],
            "valid_after/ndcg@10": report.valid_after["ndcg@10"],
            "pairs": len(pairs),
            "steps": report.steps,
            "train_seconds": report.train_seconds,
            "beta": settings.beta,
            "loss_type": ",".join(settings.loss_type),
            **reward_summary(report.history),
            "resumed_from": report.resumed_from or "",
        }
    )


@dg.asset_check(asset=dpo_checkpoint, blocking=False)
def dpo_improves_on_sft(storage: RecsysStorage) -> dg.AssetCheckResult:
    """Warns when DPO lowered validation NDCG@10; the pipeline goes on (best serves SFT)."""
    serving = json.loads((storage.artifacts().path("dpo_checkpoint") / SERVING_FILE).read_text())
    scores = serving["valid_ndcg@10"]
    return dg.AssetCheckResult(
        passed=scores["dpo"] > scores["sft"],
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "valid_ndcg@10_sft": scores["sft"],
            "valid_ndcg@10_dpo": scores["dpo"],
            "served": serving["served"],
        },
    )


def served_checkpoint(artifacts: object) -> tuple[str, object]:
    """(name, folder) of the model serving.json chose."""
    serving = json.loads((artifacts.path("dpo_checkpoint") / SERVING_FILE).read_text())
    name = serving["served"]
    return name, artifacts.path(f"{name}_checkpoint")
