"""faiss_index: the inner-product index over the served model's output item vectors."""

import dagster as dg
import numpy as np

from recsys_pipeline.assets.config import config_from_settings
from recsys_pipeline.assets.dpo_checkpoint import served_checkpoint
from recsys_pipeline.assets.failures import load_model
from recsys_pipeline.ranking.retrieval import IndexSettings
from recsys_pipeline.resources import RecsysStorage
from recsys_pipeline.settings import Settings

FaissIndexConfig = config_from_settings(
    "FaissIndexConfig", IndexSettings(), "Exact index up to a catalog size, then HNSW or IVF."
)


@dg.asset(group_name="serving", kinds={"faiss"}, deps=["dpo_checkpoint", "tokenizer", "sequences"])
def faiss_index(
    context: dg.AssetExecutionContext, config: FaissIndexConfig, storage: RecsysStorage
) -> dg.MaterializeResult:
    """Inner-product index over the served model's output item vectors, with its recall@10
    against exact search measured on real user vectors."""
    from recsys_pipeline.data.split import read_split
    from recsys_pipeline.data.vocab import load_vocab
    from recsys_pipeline.ranking.retrieval import build_item_index, write_index

    settings = config.settings()
    artifacts = storage.artifacts()
    vocab = load_vocab(artifacts.path("tokenizer"))
    served, folder = served_checkpoint(storage)
    histories = read_split(artifacts.path("sequences")).full
    rng = np.random.default_rng(0)
    sample = np.sort(
        rng.choice(len(histories), min(settings.recall_sample, len(histories)), replace=False)
    )
    index, info = build_item_index(load_model(folder), vocab, histories.take(sample), settings)
    info["model"] = served
    with artifacts.writing("faiss_index") as out:
        write_index(index, out, info)
    context.log.info(
        f"{info['kind']} index over {vocab.n_items} items, recall@10 vs exact {info['recall@10']:.4f}"
    )
    return dg.MaterializeResult(metadata={**info, "recall_sample_users": len(sample)})


def definitions(_settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[faiss_index])
