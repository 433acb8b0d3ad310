"""dpo_checkpoint: preference tuning of the SFT model, and the choice of the model that is served
(best on the validation targets, unless configured)."""

import shutil
from typing import Literal

import dagster as dg
from pydantic import Field

from recsys_pipeline.assets.config import config_from_settings
from recsys_pipeline.assets.failures import failing_clearly, load_model
from recsys_pipeline.assets.launch import train_into, work_dir_for
from recsys_pipeline.assets.metadata import markdown_table
from recsys_pipeline.assets.sft_checkpoint import PROCESSES
from recsys_pipeline.compute import training_step
from recsys_pipeline.resources import RecsysStorage
from recsys_pipeline.settings import Settings
from recsys_pipeline.training.settings import DPOSettings

DPOConfig = config_from_settings(
    "DPOConfig",
    DPOSettings(),
    "DPO from the SFT model, and which model is served.",
    serve_model=(
        Literal["best", "sft", "dpo"],
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
        and after, and the serving decision (serving.json) that faiss_index and predictions
        follow."""
        with failing_clearly(ValueError):
            dpo = config.settings()
        return train_dpo_checkpoint(context, dpo, config, storage)

    return dg.Definitions(assets=[dpo_checkpoint], asset_checks=[dpo_improves_on_sft])


def train_dpo_checkpoint(
    context: dg.AssetExecutionContext,
    settings: DPOSettings,
    config: DPOConfig,
    storage: RecsysStorage,
) -> dg.MaterializeResult:
    from recsys_pipeline.data.vocab import load_vocab
    from recsys_pipeline.training.dpo import DPOReport, reward_summary, run_request, write_serving
    from recsys_pipeline.training.pairs import PairsFileError, read_pairs

    artifacts = storage.artifacts()
    keys = ("sft_checkpoint", "dpo_pairs", "sequences", "tokenizer")
    inputs = {key: artifacts.path(key) for key in keys}
    vocab = load_vocab(inputs["tokenizer"])
    with failing_clearly(PairsFileError):
        pairs = read_pairs(inputs["dpo_pairs"], vocab)  # a bad pairs file fails before any work
    load_model(inputs["sft_checkpoint"])  # so does a broken SFT checkpoint
    work_dir = work_dir_for(storage, "dpo_checkpoint", settings, list(inputs.values()))
    with artifacts.writing("dpo_checkpoint") as folder:
        report = DPOReport.from_dict(
            train_into(
                context,
                folder,
                "recsys_pipeline.training.dpo",
                inputs,
                settings,
                work_dir,
                config.num_processes,
                run_request,
            )
        )
        (folder / "dpo_report.json").write_text(report.to_json())
        serving = write_serving(folder, config.serve_model, report)
    shutil.rmtree(work_dir, ignore_errors=True)
    served = serving["served"]
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


@dg.asset_check(asset="dpo_checkpoint", blocking=False)
def dpo_improves_on_sft(storage: RecsysStorage) -> dg.AssetCheckResult:
    """Warns when DPO lowered validation NDCG@10; the pipeline goes on (best serves SFT)."""
    from recsys_pipeline.training.dpo import read_serving

    serving = read_serving(storage.artifacts().path("dpo_checkpoint"))
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


def served_checkpoint(storage: RecsysStorage) -> tuple[str, object]:
    """(name, folder) of the model serving.json chose."""
    from recsys_pipeline.training.dpo import read_serving

    artifacts = storage.artifacts()
    name = read_serving(artifacts.path("dpo_checkpoint"))["served"]
    return name, artifacts.path(f"{name}_checkpoint")
