"""evaluation: every model ranked on the test targets under one protocol (metrics.json)."""

import dagster as dg
from pydantic import Field

from recsys_pipeline.assets.failures import load_model
from recsys_pipeline.assets.metadata import markdown_table
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
)
def evaluation(config: EvaluationConfig, storage: RecsysStorage) -> dg.MaterializeResult:
    """HR/NDCG/MRR@10 of each model on the test targets, full ranking over all items."""
    from recsys_pipeline.data.split import read_split
    from recsys_pipeline.data.vocab import load_vocab
    from recsys_pipeline.ranking.baselines import popularity_scorer
    from recsys_pipeline.ranking.protocol import METRICS_FILE, evaluate_on_test, write_evaluation
    from recsys_pipeline.ranking.scoring import model_scorer

    artifacts = storage.artifacts()
    vocab = load_vocab(artifacts.path("tokenizer"))
    split = read_split(artifacts.path("sequences"))
    scorers = {"popularity": popularity_scorer(split.train, vocab)}
    for name, key in MODEL_CHECKPOINTS.items():
        scorers[name] = model_scorer(load_model(artifacts.path(key)), vocab)
    results = evaluate_on_test(scorers, split, vocab, exclude_history=config.exclude_history)
    with artifacts.writing("evaluation") as folder:
        report = write_evaluation(results, folder)

    board = sorted(report["models"].items(), key=lambda kv: -kv[1][f"ndcg@{TOP_K}"])
    metadata: dict[str, object] = {
        "protocol": report["protocol"],
        "n_users": report["n_users"],
        "leaderboard": markdown_table(
            ["model", f"HR@{TOP_K}", f"NDCG@{TOP_K}", f"MRR@{TOP_K}"],
            [(name, m[f"hr@{TOP_K}"], m[f"ndcg@{TOP_K}"], m[f"mrr@{TOP_K}"]) for name, m in board],
        ),
        "metrics_file": dg.MetadataValue.path(str(artifacts.path("evaluation") / METRICS_FILE)),
    }
    for name, values in report["models"].items():
        for metric, value in values.items():
            metadata[f"{name}/{metric}"] = value
    return dg.MaterializeResult(metadata=metadata)


def definitions(_settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[evaluation])
