"""predictions: the served top-10 for every user, from the user's whole history."""

import dagster as dg
import numpy as np

from recsys_pipeline.assets._metadata import markdown_table
from recsys_pipeline.assets.split import sequences
from recsys_pipeline.assets.vocab import tokenizer
from recsys_pipeline.item_vocab import load_titles, load_vocab
from recsys_pipeline.metrics import TOP_K
from recsys_pipeline.baselines import popularity_scorer
from recsys_pipeline.ranking import rank_users, read_top_k_csv, write_top_k_csv
from recsys_pipeline.resources import RecsysStorage
from recsys_pipeline.split import read_split

PREDICTIONS_FILE = "predictions.csv"


class PredictionsConfig(dg.Config):
    exclude_history: bool = False  # never recommend what the user already has


@dg.asset(group_name="serving", kinds={"csv"}, deps=[sequences, tokenizer])
def predictions(config: PredictionsConfig, storage: RecsysStorage) -> dg.MaterializeResult:
    """Top-10 item ids per user, best first (model: global popularity over the training part)."""
    artifacts = storage.artifacts()
    vocab = load_vocab(artifacts.path("tokenizer"))
    split = read_split(artifacts.path("sequences"))
    ranked = rank_users(
        popularity_scorer(split.train, vocab),
        split.inputs_for("next"),
        vocab,
        exclude_history=config.exclude_history,
    )
    with artifacts.writing("predictions") as folder:
        write_top_k_csv(folder / PREDICTIONS_FILE, ranked.user_ids, ranked.top_items)

    titles = load_titles(artifacts.path("tokenizer"))
    title_of = dict(zip(vocab.item_ids.tolist(), titles, strict=True))
    preview = [
        (int(user), ", ".join(title_of[int(i)] for i in items[:3]) + ", ...")
        for user, items in zip(ranked.user_ids[:5], ranked.top_items[:5], strict=True)
    ]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(ranked.user_ids),
            "model": "popularity",
            "k": TOP_K,
            "exclude_history": config.exclude_history,
            "distinct_items_recommended": len(np.unique(ranked.top_items)),
            "preview": markdown_table(["user_id", "top items"], preview),
        }
    )


@dg.asset_check(asset=predictions, blocking=True, additional_deps=[tokenizer, sequences])
def predictions_cover_users(storage: RecsysStorage) -> dg.AssetCheckResult:
    """One row per user, each with exactly 10 distinct item ids from the catalog."""
    artifacts = storage.artifacts()
    vocab = load_vocab(artifacts.path("tokenizer"))
    users = read_split(artifacts.path("sequences")).full.user_ids
    predicted_users, lists = read_top_k_csv(artifacts.path("predictions") / PREDICTIONS_FILE)
    bad = [
        int(user)
        for user, items in zip(predicted_users, lists, strict=True)
        if len(items) != TOP_K
        or len(set(items)) != TOP_K
        or not vocab.contains(np.array(items)).all()
    ]
    same_users = sorted(predicted_users.tolist()) == sorted(users.tolist())
    return dg.AssetCheckResult(
        passed=same_users and not bad,
        metadata={
            "users_expected": len(users),
            "rows": len(predicted_users),
            "rows_without_10_distinct_valid_ids": len(bad),
            "examples": bad[:10],
        },
    )
