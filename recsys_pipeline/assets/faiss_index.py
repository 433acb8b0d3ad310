"""faiss_index: the inner-product index over the served model's output item vectors."""

import dagster as dg
import numpy as np

from recsys_pipeline.assets.config import config_from_settings
from recsys_pipeline.assets.failures import load_model
from recsys_pipeline.assets.served_model import served_checkpoint
from recsys_pipeline.assets.versions import data_version, published, reading
from recsys_pipeline.automation import FOLLOW_SERVED_MODEL
from recsys_pipeline.ranking.retrieval import IndexSettings
from recsys_pipeline.resources.storage import RecsysStorage
from recsys_pipeline.settings import Settings

FaissIndexConfig = config_from_settings(
    "FaissIndexConfig", IndexSettings(), "Exact index up to a catalog size, then HNSW or IVF."
)


@dg.asset(
    group_name="serving",
    kinds={"faiss"},
    deps=["served_model", "tokenizer", "sequences"],
    automation_condition=FOLLOW_SERVED_MODEL,
)
def faiss_index(
    context: dg.AssetExecutionContext, config: FaissIndexConfig, storage: RecsysStorage
) -> dg.MaterializeResult:
    """Inner-product index over the served model's output item vectors, with its recall@10
    against exact search measured on real user vectors."""
    from recsys_pipeline.data.split import read_split
    from recsys_pipeline.data.vocab import load_vocab
    from recsys_pipeline.ranking.retrieval import build_item_index, write_index

    settings = config.settings()
    store = storage.artifacts()
    with (
        reading(context, storage, "served_model", "tokenizer", "sequences") as inputs,
        served_checkpoint(storage, inputs) as (served, folder),
    ):
        vocab = load_vocab(inputs["tokenizer"])
        histories = read_split(inputs["sequences"]).full
        model = load_model(folder)
        # what the index was built from: the online service loads exactly these versions
        read = {
            "served_model_version": inputs["served_model"].name,
            "model_version": folder.name,
            "tokenizer_version": inputs["tokenizer"].name,
            "sequences_version": inputs["sequences"].name,
        }
    rng = np.random.default_rng(0)
    sample = np.sort(
        rng.choice(len(histories), min(settings.recall_sample, len(histories)), replace=False)
    )
    index, info = build_item_index(model, vocab, histories.take(sample), settings)
    info.update(model=served.model, **read)
    with store.writing("faiss_index") as out:
        write_index(index, out, info)
    context.log.info(
        f"{info['kind']} index over {vocab.n_items} items, recall@10 vs exact {info['recall@10']:.4f}"
    )
    version = data_version(context, inputs, settings.model_dump())
    return published(context, store, version, {**info, "recall_sample_users": len(sample)})


def definitions(_settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[faiss_index])
