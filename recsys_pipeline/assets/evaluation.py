"""evaluation: every model ranked on the test targets under one protocol (metrics.json)."""

import dagster as dg
from pydantic import Field

from recsys_pipeline.assets.failures import load_model
from recsys_pipeline.assets.metadata import table
from recsys_pipeline.assets.versions import data_version, published, reading
from recsys_pipeline.automation import FOLLOW_SERVED_MODEL
from recsys_pipeline.ranking.metrics import TOP_K
from recsys_pipeline.resources import RecsysStorage
from recsys_pipeline.settings import Settings

MODEL_CHECKPOINTS = {"sft": "sft_checkpoint", "dpo": "dpo_checkpoint"}


class EvaluationConfig(dg.Config):
    exclude_history: bool = Field(False, description="rank only items the user does not have yet")


@dg.asset(
    group_name="evaluation",
    kinds={"json"},
    deps=["sequences", "tokenizer", "sft_checkpoint", "dpo_checkpoint"],
    code_version="1",
    automation_condition=FOLLOW_SERVED_MODEL,
)
def evaluation(
    context: dg.AssetExecutionContext, config: EvaluationConfig, storage: RecsysStorage
) -> dg.MaterializeResult:
    """HR/NDCG/MRR@10 of each model on the test targets, full ranking over all items."""
    from recsys_pipeline.data.split import read_split
    from recsys_pipeline.data.vocab import load_vocab
    from recsys_pipeline.ranking.baselines import popularity_scorer
    from recsys_pipeline.ranking.protocol import METRICS_FILE, evaluate_on_test, write_evaluation
    from recsys_pipeline.ranking.scoring import model_scorer

    store = storage.artifacts()
    with reading(context, storage, "sequences", "tokenizer", *MODEL_CHECKPOINTS.values()) as inputs:
        vocab = load_vocab(inputs["tokenizer"])
        split = read_split(inputs["sequences"])
        scorers = {"popularity": popularity_scorer(split.train, vocab)}
        for name, key in MODEL_CHECKPOINTS.items():
            scorers[name] = model_scorer(load_model(inputs[key]), vocab)
    results = evaluate_on_test(scorers, split, vocab, exclude_history=config.exclude_history)
    with store.writing("evaluation") as folder:
        report = write_evaluation(results, folder)

    metrics = (f"hr@{TOP_K}", f"ndcg@{TOP_K}", f"mrr@{TOP_K}")
    board = sorted(report["models"].items(), key=lambda kv: -kv[1][f"ndcg@{TOP_K}"])
    metadata: dict[str, object] = {
        "protocol": report["protocol"],
        "n_users": report["n_users"],
        "leaderboard": table(
            {"model": "str", **{m: "float" for m in metrics}},
            [(name, *(values[m] for m in metrics)) for name, values in board],
        ),
        "metrics_file": dg.MetadataValue.path(str(store.published["evaluation"] / METRICS_FILE)),
    }
    for name, values in report["models"].items():
        for metric, value in values.items():
            metadata[f"{name}/{metric}"] = value
    return published(context, store, data_version(context, inputs, config.model_dump()), metadata)


def definitions(_settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[evaluation])
