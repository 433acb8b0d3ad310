"""sft_checkpoint: the two-stage supervised SASRec model (GPU-tagged)."""

import hashlib
import json
import shutil
from dataclasses import asdict, fields

import dagster as dg

from recsys_pipeline.assets._launch import train_into
from recsys_pipeline.assets._metadata import image, markdown_table
from recsys_pipeline.assets.embeddings import item_embeddings
from recsys_pipeline.assets.split import sequences
from recsys_pipeline.assets.vocab import tokenizer
from recsys_pipeline.compute import TRAINING_TAGS
from recsys_pipeline.resources import RecsysStorage
from recsys_pipeline.settings import load_settings
from recsys_pipeline.training.config import SFTSettings

_SFT = load_settings().profile.sft


class SFTConfig(dg.Config):
    """Model size and training; defaults come from the compute profile (RECSYS_PROFILE)."""

    variant: str = _SFT.variant
    hidden_size: int = _SFT.hidden_size
    num_hidden_layers: int = _SFT.num_hidden_layers
    num_attention_heads: int = _SFT.num_attention_heads
    head_dim: int | None = _SFT.head_dim
    intermediate_size: int = _SFT.intermediate_size
    norm_position: str = _SFT.norm_position
    hidden_dropout: float = _SFT.hidden_dropout
    attention_dropout: float = _SFT.attention_dropout
    init: str = _SFT.init
    init_std: float = _SFT.init_std
    stage1_epochs: int = _SFT.stage1_epochs
    stage2_epochs: int = _SFT.stage2_epochs
    stage1_learning_rate: float = _SFT.stage1_learning_rate
    learning_rate: float = _SFT.learning_rate
    batch_size: int = _SFT.batch_size
    warmup_ratio: float = _SFT.warmup_ratio
    scheduler: str = _SFT.scheduler
    weight_decay: float = _SFT.weight_decay
    patience: int = _SFT.patience
    seed: int = _SFT.seed
    output_precision: str = _SFT.output_precision
    num_processes: int = 1  # > 1: torchrun data-parallel processes (GPUs, or gloo on CPU)

    def settings(self, max_length: int) -> SFTSettings:
        """The plain settings; max_length comes from the sequences artifact."""
        names = {f.name for f in fields(SFTSettings)}
        return SFTSettings(
            **{k: v for k, v in self.model_dump().items() if k in names}, max_length=max_length
        )


def work_dir_for(storage: RecsysStorage, key: str, settings: object, inputs: list) -> object:
    """A resumable work folder per (settings, exact input artifact versions)."""
    fingerprint = json.dumps([asdict(settings), [str(p) for p in inputs]], sort_keys=True)
    return storage.root / "work" / key / hashlib.sha256(fingerprint.encode()).hexdigest()[:16]


@dg.asset(
    group_name="model",
    kinds={"pytorch", "huggingface"},
    deps=[sequences, tokenizer, item_embeddings],
    op_tags=TRAINING_TAGS,
    pool="gpu",
)
def sft_checkpoint(
    context: dg.AssetExecutionContext, config: SFTConfig, storage: RecsysStorage
) -> dg.MaterializeResult:
    """SASRec trained in two stages (item rows frozen, then all), best epoch by validation
    NDCG@10; a Hugging Face folder that loads with AutoModelForCausalLM after import recsys_pipeline."""

    from recsys_pipeline.item_text import read_vectors
    from recsys_pipeline.item_vocab import load_vocab
    from recsys_pipeline.plots import curves_png
    from recsys_pipeline.split import read_max_history_length
    from recsys_pipeline.training.sft import SFTReport, run_request

    artifacts = storage.artifacts()
    inputs = [artifacts.path(k) for k in ("sequences", "tokenizer", "item_embeddings")]
    vocab = load_vocab(inputs[1])
    try:
        settings = config.settings(read_max_history_length(inputs[0]))
        settings.model_config(vocab)  # a bad size fails here, before any work
        vectors = read_vectors(inputs[2], vocab) if settings.init == "text" else None
    except ValueError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    if vectors is not None and vectors.shape[1] != settings.hidden_size:
        raise dg.Failure(
            f"item_embeddings has {vectors.shape[1]} dimensions but hidden_size is "
            f"{settings.hidden_size}: set item_embeddings.dimensions to match and re-materialize it",
            allow_retries=False,
        )
    work_dir = work_dir_for(storage, "sft_checkpoint", settings, inputs)
    with artifacts.writing("sft_checkpoint") as folder:
        report = SFTReport.from_dict(
            train_into(
                context,
                folder,
                "recsys_pipeline.training.sft",
                {"sequences": inputs[0], "tokenizer": inputs[1], "item_embeddings": inputs[2]},
                settings,
                work_dir,
                config.num_processes,
                run_request,
            )
        )
        (folder / "training_report.json").write_text(report.to_json())
        plot = curves_png(
            {
                "training loss": [e.train_loss for e in report.epochs],
                "validation NDCG@10": [e.metrics["ndcg@10"] for e in report.epochs],
            },
            "SFT (stage 1 then stage 2)",
            "epoch",
        )
        (folder / "curves.png").write_bytes(plot)
    shutil.rmtree(work_dir, ignore_errors=True)
    return dg.MaterializeResult(metadata=training_metadata(report, plot, settings))


def training_metadata(report: object, plot: bytes, settings: object) -> dict:
    rows = [
        (
            e.stage,
            e.epoch,
            e.train_loss,
            e.metrics["hr@10"],
            e.metrics["ndcg@10"],
            e.metrics["mrr@10"],
        )
        for e in report.epochs
    ]
    return {
        "variant": settings.variant,
        "init": settings.init,
        "parameters": report.parameters,
        "device": report.device,
        "epochs": markdown_table(
            ["stage", "epoch", "train loss", "HR@10", "NDCG@10", "MRR@10"], rows
        ),
        "curves": image(plot, "training loss and validation NDCG@10 per epoch"),
        "valid/hr@10": report.best_metrics["hr@10"],
        "valid/ndcg@10": report.best_metrics["ndcg@10"],
        "valid/mrr@10": report.best_metrics["mrr@10"],
        "wall_seconds": report.wall_seconds,
        "train_tokens_per_s": report.tokens_per_s,
        "train_targets_per_s": report.targets_per_s,
        "resumed_from": report.resumed_from or "",
    }
