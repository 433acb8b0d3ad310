"""evaluation: the leaderboard, every model ranked on the validation and test targets under one
protocol (metrics.json), the served one named."""

import dagster as dg
from pydantic import Field

from recsys_pipeline.assets.failures import load_model
from recsys_pipeline.assets.metadata import table
from recsys_pipeline.assets.served_model import served_checkpoint
from recsys_pipeline.assets.versions import data_version, published, reading
from recsys_pipeline.automation import FOLLOW_SERVED_MODEL
from recsys_pipeline.models.served import CHECKPOINT_ASSETS
from recsys_pipeline.ranking.metrics import TOP_K
from recsys_pipeline.resources.storage import RecsysStorage
from recsys_pipeline.settings import Settings


class EvaluationConfig(dg.Config):
    exclude_history: bool = Field(False, description="rank only items the user does not have yet")


@dg.asset(
    group_name="evaluation",
    kinds={"json"},
    deps=["sequences", "tokenizer", "sft_checkpoint", "dpo_checkpoint", "served_model"],
    automation_condition=FOLLOW_SERVED_MODEL,
)
def evaluation(
    context: dg.AssetExecutionContext, config: EvaluationConfig, storage: RecsysStorage
) -> dg.MaterializeResult:
    """The leaderboard: HR/NDCG/MRR@10 of each model (popularity, last-item transition, SFT, DPO)
    on the validation and the test targets, full ranking over all items; the served model is
    named, and ranked as its own row ``served`` when it is not the latest checkpoint of its
    kind (a new SFT model that DPO has not been compared with yet)."""
    from recsys_pipeline.data.split import read_split
    from recsys_pipeline.data.vocab import load_vocab
    from recsys_pipeline.monitoring.progress import Progress
    from recsys_pipeline.ranking.baselines import popularity_scorer, transition_scorer
    from recsys_pipeline.ranking.full_ranking import counted
    from recsys_pipeline.ranking.protocol import METRICS_FILE, evaluate_targets, write_evaluation
    from recsys_pipeline.ranking.scoring import model_scorer

    store = storage.artifacts()
    keys = ("sequences", "tokenizer", *CHECKPOINT_ASSETS.values(), "served_model")
    with (
        reading(context, storage, *keys) as inputs,
        served_checkpoint(storage, inputs) as (served, served_folder),
    ):
        vocab = load_vocab(inputs["tokenizer"])
        split = read_split(inputs["sequences"])
        scorers = {
            "popularity": popularity_scorer(split.train, vocab),
            "transition": transition_scorer(split.train, vocab),
        }
        for name, key in CHECKPOINT_ASSETS.items():
            scorers[name] = model_scorer(load_model(inputs[key]), vocab)
        served_row = served.model
        if served_folder.name != inputs[served.checkpoint].name:
            served_row = "served"
            scorers[served_row] = model_scorer(load_model(served_folder), vocab)
    exclude = config.exclude_history
    # every user with targets, ranked by each model on the test and on the validation targets
    total = 2 * len(scorers) * int(split.splittable.sum())
    label = f"evaluation ({len(scorers)} models, test and validation targets)"
    with Progress(context.log.info, label, total, "users") as progress:
        scorers = {name: counted(scorer, progress) for name, scorer in scorers.items()}
        results = evaluate_targets(scorers, split, vocab, exclude_history=exclude)
        validation = evaluate_targets(scorers, split, vocab, exclude_history=exclude, stage="valid")
    with store.writing("evaluation") as folder:
        report = write_evaluation(results, folder, validation)

    metrics = (f"hr@{TOP_K}", f"ndcg@{TOP_K}", f"mrr@{TOP_K}")
    board = sorted(report["models"], key=lambda name: -report["models"][name][f"ndcg@{TOP_K}"])
    metadata: dict[str, object] = {
        "served": served_row,
        "served_checkpoint": f"{served.checkpoint} {served.version}",
        "protocol": report["protocol"],
        "n_users": report["n_users"],
        "leaderboard": table(
            {
                "model": "str",
                **{f"valid {m}": "float" for m in metrics},
                **{f"test {m}": "float" for m in metrics},
            },
            [
                (
                    name,
                    *(report["validation"][name][m] for m in metrics),
                    *(report["models"][name][m] for m in metrics),
                )
                for name in board
            ],
        ),
        "metrics_file": dg.MetadataValue.path(str(store.published["evaluation"] / METRICS_FILE)),
    }
    for part, prefix in (("models", ""), ("validation", "valid_")):
        for name, values in report[part].items():
            for metric, value in values.items():
                metadata[f"{name}/{prefix}{metric}"] = value
    return published(context, store, data_version(context, inputs, config.model_dump()), metadata)


def definitions(_settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[evaluation])
