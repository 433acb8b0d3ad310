"""predictions: the served model's top-10 for every user, from the whole history."""

import time
from datetime import timedelta

import dagster as dg
import numpy as np
from pydantic import Field

from recsys_pipeline.assets.failures import load_model
from recsys_pipeline.assets.metadata import markdown_table
from recsys_pipeline.assets.served_model import served_checkpoint
from recsys_pipeline.assets.versions import data_version, published, reading
from recsys_pipeline.automation import FOLLOW_INDEX
from recsys_pipeline.data.histories import as_ids
from recsys_pipeline.ranking.metrics import TOP_K
from recsys_pipeline.resources.storage import RecsysStorage
from recsys_pipeline.settings import Settings

PREDICTIONS_FILE = "predictions.csv"


class PredictionsConfig(dg.Config):
    exclude_history: bool = Field(False, description="never recommend what the user already has")
    batch_size: int = Field(4096, ge=1, description="users per model and faiss batch")


def definitions(settings: Settings) -> dg.Definitions:
    @dg.asset(
        group_name="serving",
        kinds={"csv"},
        deps=["faiss_index", "served_model", "sequences", "tokenizer"],
        automation_condition=FOLLOW_INDEX,
        # the daemon marks predictions as failing freshness when they are older than this
        freshness_policy=dg.FreshnessPolicy.time_window(
            fail_window=timedelta(days=settings.predictions_max_age_days)
        ),
    )
    def predictions(
        context: dg.AssetExecutionContext, config: PredictionsConfig, storage: RecsysStorage
    ) -> dg.MaterializeResult:
        """Top-10 item ids per user, best first, from the served model's reading of the whole
        history, searched in faiss_index."""
        return predict(context, config, storage)

    return dg.Definitions(assets=[predictions], asset_checks=[predictions_cover_users])


def predict(
    context: dg.AssetExecutionContext, config: PredictionsConfig, storage: RecsysStorage
) -> dg.MaterializeResult:
    from recsys_pipeline.data.split import read_split
    from recsys_pipeline.data.vocab import load_titles, load_vocab
    from recsys_pipeline.ranking.retrieval import on_gpu, read_index, recommend
    from recsys_pipeline.ranking.topk_files import write_top_k_csv

    started = time.perf_counter()
    store = storage.artifacts()
    keys = ("faiss_index", "served_model", "sequences", "tokenizer")
    with (
        reading(context, storage, *keys) as inputs,
        served_checkpoint(storage, inputs) as (served, folder),
    ):
        vocab = load_vocab(inputs["tokenizer"])
        titles = load_titles(inputs["tokenizer"])
        model = load_model(folder)
        index, info = read_index(inputs["faiss_index"])
        histories = read_split(inputs["sequences"]).inputs_for("next")
        if info.get("model_version") != folder.name:
            raise dg.Failure(
                f"faiss_index was built for {info['model']} version {info.get('model_version')} "
                f"but {served.model} version {folder.name} is served now: re-materialize "
                "faiss_index",
                allow_retries=False,
            )
    top_items = recommend(
        model,
        on_gpu(index),
        histories,
        vocab,
        TOP_K,
        exclude_history=config.exclude_history,
        batch_size=config.batch_size,
        progress_log=context.log.info,
    ).items
    with store.writing("predictions") as out:
        write_top_k_csv(out / PREDICTIONS_FILE, histories.user_ids, top_items)
    seconds = time.perf_counter() - started
    context.log.info(f"top-{TOP_K} for {len(histories)} users in {seconds:.1f} s")

    title_of = dict(zip(vocab.item_ids.tolist(), titles, strict=True))
    preview = [
        (str(user), ", ".join(title_of[i] for i in top[:3]) + ", ...")
        for user, top in zip(histories.user_ids[:5].tolist(), top_items[:5].tolist(), strict=True)
    ]
    return published(
        context,
        store,
        data_version(context, inputs, config.model_dump()),
        {
            "dagster/row_count": len(histories),
            "model": served.model,
            "index": info["kind"],
            "k": TOP_K,
            "exclude_history": config.exclude_history,
            "seconds": seconds,
            "distinct_items_recommended": len(np.unique(top_items)),
            "preview": markdown_table(["user_id", "top items"], preview),
        },
    )


@dg.asset_check(asset="predictions", blocking=True, additional_deps=["tokenizer", "sequences"])
def predictions_cover_users(
    context: dg.AssetCheckExecutionContext, storage: RecsysStorage
) -> dg.AssetCheckResult:
    """One row per user, each with exactly 10 distinct item ids from the catalog."""
    from recsys_pipeline.data.split import read_split
    from recsys_pipeline.data.vocab import load_vocab
    from recsys_pipeline.ranking.topk_files import read_top_k_csv

    with reading(context, storage, "predictions", "tokenizer", "sequences") as inputs:
        vocab = load_vocab(inputs["tokenizer"])
        users = read_split(inputs["sequences"]).full.user_ids
        predicted_users, lists = read_top_k_csv(inputs["predictions"] / PREDICTIONS_FILE)
    bad = [
        user
        for user, items in zip(predicted_users.tolist(), lists, strict=True)
        if len(items) != TOP_K
        or len(set(items)) != TOP_K
        or not vocab.contains(as_ids(items)).all()
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
