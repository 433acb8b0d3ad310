"""dpo_checkpoint: preference tuning of the SFT model, and the choice of the model that is served
(best on the validation targets, unless configured), which served_model publishes."""

import shutil

import dagster as dg
from pydantic import Field

from recsys_pipeline.assets.config import config_from_settings
from recsys_pipeline.assets.failures import failing_clearly, load_model
from recsys_pipeline.assets.launch import train_into, work_dir_for
from recsys_pipeline.assets.metadata import table
from recsys_pipeline.assets.sft_checkpoint import PROCESSES, tracking_metadata
from recsys_pipeline.assets.versions import (
    Inputs,
    data_version,
    published,
    reading,
    unchanged,
)
from recsys_pipeline.compute import training_step
from recsys_pipeline.models.served import ServeRule, read_choice, write_choice
from recsys_pipeline.resources.storage import RecsysStorage
from recsys_pipeline.settings import Settings
from recsys_pipeline.training.settings import DPOSettings

DPOConfig = config_from_settings(
    "DPOConfig",
    DPOSettings(),
    "DPO from the SFT model, and which model is served.",
    serve_model=(
        ServeRule,
        Field("best", description="best: the higher validation NDCG@10; or force sft or dpo"),
    ),
    num_processes=PROCESSES,
)


def definitions(settings: Settings) -> dg.Definitions:
    @dg.asset(
        group_name="preference",
        kinds={"pytorch", "huggingface"},
        deps=["sft_checkpoint", "dpo_pairs", "sequences", "tokenizer"],
        **training_step(settings),
    )
    def dpo_checkpoint(
        context: dg.AssetExecutionContext, config: DPOConfig, storage: RecsysStorage
    ) -> dg.MaterializeResult:
        """The SFT model after DPO (TRL, frozen SFT reference), with validation metrics before
        and after, and the serving decision (serving.json) that served_model publishes."""
        with failing_clearly(ValueError):
            dpo = config.settings()
        keys = ("sft_checkpoint", "dpo_pairs", "sequences", "tokenizer")
        with reading(context, storage, *keys) as inputs:
            version = data_version(
                context, inputs, {**dpo.model_dump(), "serve_model": config.serve_model}
            )
            if (same := unchanged(context, storage, version)) is not None:
                return same
            return train_dpo_checkpoint(context, dpo, config, storage, inputs, version)

    return dg.Definitions(assets=[dpo_checkpoint], asset_checks=[dpo_improves_on_sft])


def train_dpo_checkpoint(
    context: dg.AssetExecutionContext,
    settings: DPOSettings,
    config: DPOConfig,
    storage: RecsysStorage,
    inputs: Inputs,
    version: dg.DataVersion,
) -> dg.MaterializeResult:
    from recsys_pipeline.data.vocab import load_vocab
    from recsys_pipeline.training.dpo import DPOReport, reward_summary, run_request
    from recsys_pipeline.training.pairs import PairsFileError, read_pairs

    vocab = load_vocab(inputs["tokenizer"])
    with failing_clearly(PairsFileError):
        pairs = read_pairs(inputs["dpo_pairs"], vocab)  # a bad pairs file fails before any work
    load_model(inputs["sft_checkpoint"])  # so does a broken SFT checkpoint
    work_dir = work_dir_for(storage, "dpo_checkpoint", settings, list(inputs.paths.values()))
    store = storage.artifacts()
    with store.writing("dpo_checkpoint") as folder:
        report = DPOReport.from_dict(
            train_into(
                context,
                folder,
                "recsys_pipeline.training.dpo",
                inputs.paths,
                settings,
                work_dir,
                config.num_processes,
                run_request,
            )
        )
        report.write(folder)
        serving = write_choice(
            folder,
            config.serve_model,
            {"sft": report.valid_before["ndcg@10"], "dpo": report.valid_after["ndcg@10"]},
            sft_version=inputs["sft_checkpoint"].name,
        )
    shutil.rmtree(work_dir, ignore_errors=True)
    served = serving["served"]
    context.log.info(f"serving {served} ({config.serve_model}): {serving['valid_ndcg@10']}")
    rows = [
        (name, m["hr@10"], m["ndcg@10"], m["mrr@10"])
        for name, m in (("sft", report.valid_before), ("dpo", report.valid_after))
    ]
    columns = {"model": "str", "hr@10": "float", "ndcg@10": "float", "mrr@10": "float"}
    return published(
        context,
        store,
        version,
        {
            "served": served,
            "serve_model": config.serve_model,
            "validation": table(columns, rows),
            **{f"valid_before/{k}": v for k, v in report.valid_before.items()},
            **{f"valid_after/{k}": v for k, v in report.valid_after.items()},
            "pairs": len(pairs),
            "steps": report.steps,
            "train_seconds": report.train_seconds,
            "beta": settings.beta,
            "loss_type": ",".join(settings.loss_type),
            **reward_summary(report.history),
            "resumed_from": report.resumed_from or "",
            **tracking_metadata(store.published["dpo_checkpoint"], report.tracker_runs),
        },
    )


@dg.asset_check(asset="dpo_checkpoint", blocking=False)
def dpo_improves_on_sft(
    context: dg.AssetCheckExecutionContext, storage: RecsysStorage
) -> dg.AssetCheckResult:
    """Warns when DPO lowered validation NDCG@10; the pipeline goes on (best serves SFT)."""
    with reading(context, storage, "dpo_checkpoint") as inputs:
        serving = read_choice(inputs["dpo_checkpoint"])
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
