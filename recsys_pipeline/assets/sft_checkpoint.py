"""sft_checkpoint: the two-stage supervised SASRec model (GPU-tagged)."""

import shutil
from pathlib import Path

import dagster as dg
from pydantic import Field

from recsys_pipeline.assets.config import config_from_settings
from recsys_pipeline.assets.failures import failing_clearly
from recsys_pipeline.assets.launch import train_into, work_dir_for
from recsys_pipeline.assets.metadata import image, table
from recsys_pipeline.assets.versions import (
    Inputs,
    data_version,
    published,
    reading,
    unchanged,
)
from recsys_pipeline.compute import training_step
from recsys_pipeline.resources.storage import RecsysStorage
from recsys_pipeline.settings import Settings
from recsys_pipeline.training.settings import SFTSettings

EPOCH_COLUMNS = {
    "stage": "int",
    "epoch": "int",
    "train_loss": "float",
    "valid_hr@10": "float",
    "valid_ndcg@10": "float",
    "valid_mrr@10": "float",
}
PROCESSES = (
    int,
    Field(1, ge=1, description="> 1: torchrun data-parallel processes (GPUs, or gloo on CPU)"),
)


def definitions(settings: Settings) -> dg.Definitions:
    SFTConfig = config_from_settings(
        "SFTConfig",
        settings.profile.sft,
        "Model size and training; defaults come from the compute profile (RECSYS_PROFILE).",
        num_processes=PROCESSES,
    )

    @dg.asset(
        group_name="model",
        kinds={"pytorch", "huggingface"},
        deps=["sequences", "tokenizer", "item_embeddings"],
        **training_step(settings),
    )
    def sft_checkpoint(
        context: dg.AssetExecutionContext, config: SFTConfig, storage: RecsysStorage
    ) -> dg.MaterializeResult:
        """SASRec trained in two stages (item rows frozen, then all), best epoch by validation
        NDCG@10; a Hugging Face folder that loads with AutoModelForCausalLM after
        import recsys_pipeline."""
        with failing_clearly(ValueError):
            sft = config.settings()
        return train_sft_checkpoint(context, sft, config.num_processes, storage)

    return dg.Definitions(assets=[sft_checkpoint])


def train_sft_checkpoint(
    context: dg.AssetExecutionContext, settings: SFTSettings, processes: int, storage: RecsysStorage
) -> dg.MaterializeResult:
    with reading(context, storage, "sequences", "tokenizer", "item_embeddings") as inputs:
        # the processes only change how the same training is spread, not what it computes
        version = data_version(context, inputs, settings.model_dump())
        if (same := unchanged(context, storage, version)) is not None:
            return same
        return train(context, settings, processes, storage, inputs, version)


def train(
    context: dg.AssetExecutionContext,
    settings: SFTSettings,
    processes: int,
    storage: RecsysStorage,
    inputs: Inputs,
    version: dg.DataVersion,
) -> dg.MaterializeResult:
    from recsys_pipeline.assets.plots import curves_png
    from recsys_pipeline.data.vocab import load_vocab
    from recsys_pipeline.enrichment.text_vectors import read_vectors
    from recsys_pipeline.training.sft import SFTReport, run_request

    vocab = load_vocab(inputs["tokenizer"])
    with failing_clearly(ValueError):
        settings.sasrec_config(vocab)  # a bad size fails here, before any work
        vectors = (
            read_vectors(inputs["item_embeddings"], vocab) if settings.init == "text" else None
        )
    if vectors is not None and vectors.shape[1] != settings.hidden_size:
        raise dg.Failure(
            f"item_embeddings has {vectors.shape[1]} dimensions but hidden_size is "
            f"{settings.hidden_size}: set item_embeddings.dimensions to match and re-materialize it",
            allow_retries=False,
        )
    work_dir = work_dir_for(storage, "sft_checkpoint", settings, list(inputs.paths.values()))
    store = storage.artifacts()
    with store.writing("sft_checkpoint") as folder:
        report = SFTReport.from_dict(
            train_into(
                context,
                folder,
                "recsys_pipeline.training.sft",
                inputs.paths,
                settings,
                work_dir,
                processes,
                run_request,
            )
        )
        report.write(folder)
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
    metadata = {
        **training_metadata(report, plot, settings),
        **tracking_metadata(store.published["sft_checkpoint"], report.tracker_runs),
    }
    return published(context, store, version, metadata)


def tracking_metadata(folder: Path, runs: dict[str, dict[str, str]]) -> dict:
    """Where the training's experiment tracker holds the run: the TensorBoard event files kept
    in the published ``folder``, and the runs an MLflow server recorded (per stage)."""
    metadata: dict[str, object] = {}
    if (folder / "tensorboard").is_dir():
        metadata["tensorboard_logdir"] = dg.MetadataValue.path(str(folder / "tensorboard"))
    if runs:
        metadata["tracker_runs"] = dg.MetadataValue.json(runs)
    return metadata


def training_metadata(report: object, plot: bytes, settings: SFTSettings) -> dict:
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
        "max_history_length": settings.max_history_length,
        "parameters": report.parameters,
        "device": report.device,
        "epochs": table(EPOCH_COLUMNS, rows),
        "curves": image(plot, "training loss and validation NDCG@10 per epoch"),
        "valid/hr@10": report.best_metrics["hr@10"],
        "valid/ndcg@10": report.best_metrics["ndcg@10"],
        "valid/mrr@10": report.best_metrics["mrr@10"],
        "wall_seconds": report.wall_seconds,
        "train_tokens_per_s": report.tokens_per_s,
        "train_targets_per_s": report.targets_per_s,
        "resumed_from": report.resumed_from or "",
        # the mean of stage 2's last checkpoints up to the best, where average_checkpoints > 1
        "averaged": report.averaged or {},
    }
