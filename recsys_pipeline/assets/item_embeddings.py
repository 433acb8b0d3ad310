"""item_embeddings: one text vector per catalog item, fitted to the model's hidden size."""

import dagster as dg
import numpy as np

from recsys_pipeline.assets._metadata import image
from recsys_pipeline.assets.enrichment import item_profiles, read_profiles
from recsys_pipeline.assets.split import sequences
from recsys_pipeline.assets.vocab import tokenizer
from recsys_pipeline.compute import TRAINING_TAGS
from recsys_pipeline.resources import RecsysStorage
from recsys_pipeline.settings import load_settings

_PROFILE = load_settings().profile
TEXT_SOURCES = ("title", "profile")


class ItemEmbeddingsConfig(dg.Config):
    text: str = "title"  # "title", or "profile" (item_profiles: title + Steam/Wikipedia facts)
    model: str = _PROFILE.embedding_model  # sentence-transformers name or path
    dimensions: int = _PROFILE.sft.hidden_size  # the model's hidden size
    batch_size: int = 256
    seed: int = 0


@dg.asset(
    group_name="model",
    kinds={"numpy", "parquet"},
    deps=[tokenizer, sequences, item_profiles],
    op_tags=TRAINING_TAGS,
    pool="gpu",
)
def item_embeddings(
    context: dg.AssetExecutionContext, config: ItemEmbeddingsConfig, storage: RecsysStorage
) -> dg.MaterializeResult:
    """Sentence embeddings of each item's text; items without usable text take the mean of their
    co-occurring neighbours (training parts only); PCA to the model's hidden size."""
    from recsys_pipeline.item_text import build_item_vectors, profile_texts, write_vectors
    from recsys_pipeline.item_vocab import load_titles, load_vocab
    from recsys_pipeline.plots import scatter_png
    from recsys_pipeline.split import read_split
    from recsys_pipeline.training.sft import device_and_precision

    if config.text not in TEXT_SOURCES:
        raise dg.Failure(f"item_embeddings.text={config.text!r}: use one of {TEXT_SOURCES}")
    artifacts = storage.artifacts()
    vocab = load_vocab(artifacts.path("tokenizer"))
    texts = load_titles(artifacts.path("tokenizer"))
    if config.text == "profile":
        texts = profile_texts(texts, read_profiles(artifacts.path("item_profiles")))
    split = read_split(artifacts.path("sequences"))
    device, _ = device_and_precision()
    context.log.info(f"encoding {len(texts)} item texts with {config.model} on {device}")
    built = build_item_vectors(
        texts,
        split.train,
        vocab,
        config.model,
        config.dimensions,
        device,
        config.batch_size,
        config.seed,
    )

    rng = np.random.default_rng(config.seed)
    sample = rng.choice(vocab.n_items, min(3000, vocab.n_items), replace=False)
    plot = scatter_png(
        built.vectors[sample, :2], built.source[sample], "Item vectors, first two components"
    )
    with artifacts.writing("item_embeddings") as folder:
        write_vectors(folder, built.vectors, vocab, built.source)
        (folder / "projection.png").write_bytes(plot)

    counts = {s: int((built.source == s).sum()) for s in ("text", "neighbours", "random")}
    return dg.MaterializeResult(
        metadata={
            "items": vocab.n_items,
            "model": config.model,
            "text": config.text,
            "dimensions": config.dimensions,
            "raw_dimensions": built.raw_dimensions,
            "explained_variance": built.explained_variance,
            "coverage": counts["text"] / vocab.n_items,
            "filled_from_neighbours": counts["neighbours"],
            "random": counts["random"],
            "projection": image(plot, "2-D projection of a sample of item vectors"),
        }
    )
