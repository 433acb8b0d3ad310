"""faiss_index and predictions: the served model's top-10 for every user, from the whole history."""

import dagster as dg
import numpy as np

from recsys_pipeline.assets._loading import load_model
from recsys_pipeline.assets._metadata import markdown_table
from recsys_pipeline.assets.preference import dpo_checkpoint, served_checkpoint
from recsys_pipeline.assets.split import sequences
from recsys_pipeline.assets.vocab import tokenizer
from recsys_pipeline.metrics import TOP_K
from recsys_pipeline.resources import RecsysStorage

PREDICTIONS_FILE = "predictions.csv"


class FaissIndexConfig(dg.Config):
    exact_up_to: int = 200_000  # catalogs up to this size get the exact flat index
    approximate: str = "hnsw"  # "hnsw" or "ivf" above that size
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    ivf_lists: int = 256
    ivf_probe: int = 16
    recall_sample: int = 2000  # users whose exact top-10 the index is checked against


@dg.asset(group_name="serving", kinds={"faiss"}, deps=[dpo_checkpoint, tokenizer, sequences])
def faiss_index(
    context: dg.AssetExecutionContext, config: FaissIndexConfig, storage: RecsysStorage
) -> dg.MaterializeResult:
    """Inner-product index over the served model's output item vectors, with its recall@10
    against exact search measured on real user vectors."""
    from recsys_pipeline.item_vocab import load_vocab
    from recsys_pipeline.retrieval import IndexSpec, build_index, recall_at_k, search, write_index
    from recsys_pipeline.scoring import item_output_vectors, user_vectors
    from recsys_pipeline.split import read_max_history_length, read_split

    artifacts = storage.artifacts()
    vocab = load_vocab(artifacts.path("tokenizer"))
    served, folder = served_checkpoint(artifacts)
    model = load_model(folder)
    items = item_output_vectors(model, vocab).numpy()
    kind = "flat" if vocab.n_items <= config.exact_up_to else config.approximate
    spec = IndexSpec(
        kind=kind,
        hnsw_m=config.hnsw_m,
        hnsw_ef_search=config.hnsw_ef_search,
        ivf_lists=config.ivf_lists,
        ivf_probe=config.ivf_probe,
    )
    index = build_index(items, spec)

    split = read_split(artifacts.path("sequences"))
    rng = np.random.default_rng(0)
    sample = np.sort(
        rng.choice(len(split.full), min(config.recall_sample, len(split.full)), replace=False)
    )
    max_length = read_max_history_length(artifacts.path("sequences"))
    queries = user_vectors(model, split.full.take(sample), vocab, max_length).numpy()
    exact = build_index(items, IndexSpec(kind="flat"))
    recall = recall_at_k(search(index, queries, TOP_K)[1], search(exact, queries, TOP_K)[1])
    info = {
        "kind": kind,
        "items": vocab.n_items,
        "dimensions": int(items.shape[1]),
        "model": served,
        "recall@10": recall,
    }
    with artifacts.writing("faiss_index") as folder:
        write_index(index, folder, info)
    context.log.info(f"{kind} index over {vocab.n_items} items, recall@10 vs exact {recall:.4f}")
    return dg.MaterializeResult(metadata={**info, "recall_sample_users": len(sample)})


class PredictionsConfig(dg.Config):
    exclude_history: bool = False  # never recommend what the user already has
    batch_size: int = 4096


@dg.asset(
    group_name="serving", kinds={"csv"}, deps=[faiss_index, dpo_checkpoint, sequences, tokenizer]
)
def predictions(
    context: dg.AssetExecutionContext, config: PredictionsConfig, storage: RecsysStorage
) -> dg.MaterializeResult:
    """Top-10 item ids per user, best first, from the served model's reading of the whole
    history, searched in faiss_index."""
    import time

    from recsys_pipeline.item_vocab import load_titles, load_vocab
    from recsys_pipeline.ranking import write_top_k_csv
    from recsys_pipeline.retrieval import on_gpu, read_index, top_k_with_history
    from recsys_pipeline.scoring import item_output_vectors, seen_bias_of, user_vectors
    from recsys_pipeline.split import read_max_history_length, read_split

    started = time.perf_counter()
    artifacts = storage.artifacts()
    vocab = load_vocab(artifacts.path("tokenizer"))
    served, folder = served_checkpoint(artifacts)
    model = load_model(folder)
    index, info = read_index(artifacts.path("faiss_index"))
    if info["model"] != served:
        raise dg.Failure(
            f"faiss_index was built for {info['model']} but {served} is served now: "
            "re-materialize faiss_index",
            allow_retries=False,
        )
    index = on_gpu(index)
    items = item_output_vectors(model, vocab).numpy()
    max_length = read_max_history_length(artifacts.path("sequences"))
    histories = read_split(artifacts.path("sequences")).inputs_for("next").truncated(max_length)
    tops = []
    for start in range(0, len(histories), config.batch_size):
        batch = histories.rows(start, start + config.batch_size)
        queries = user_vectors(model, batch, vocab, max_length).numpy()
        tops.append(
            top_k_with_history(
                index,
                queries,
                items,
                batch,
                vocab,
                TOP_K,
                seen_bias_of(model),
                config.exclude_history,
            )
        )
    top_items = np.concatenate(tops)
    with artifacts.writing("predictions") as folder:
        write_top_k_csv(folder / PREDICTIONS_FILE, histories.user_ids, top_items)
    seconds = time.perf_counter() - started
    context.log.info(f"top-{TOP_K} for {len(histories)} users in {seconds:.1f} s")

    titles = load_titles(artifacts.path("tokenizer"))
    title_of = dict(zip(vocab.item_ids.tolist(), titles, strict=True))
    preview = [
        (int(user), ", ".join(title_of[int(i)] for i in top[:3]) + ", ...")
        for user, top in zip(histories.user_ids[:5], top_items[:5], strict=True)
    ]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(histories),
            "model": served,
            "index": info["kind"],
            "k": TOP_K,
            "exclude_history": config.exclude_history,
            "seconds": seconds,
            "distinct_items_recommended": len(np.unique(top_items)),
            "preview": markdown_table(["user_id", "top items"], preview),
        }
    )


@dg.asset_check(asset=predictions, blocking=True, additional_deps=[tokenizer, sequences])
def predictions_cover_users(storage: RecsysStorage) -> dg.AssetCheckResult:
    """One row per user, each with exactly 10 distinct item ids from the catalog."""
    from recsys_pipeline.item_vocab import load_vocab
    from recsys_pipeline.ranking import read_top_k_csv
    from recsys_pipeline.split import read_split

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
