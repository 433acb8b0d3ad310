"""item_embeddings: one text vector per catalog item, fitted to the model's hidden size."""

import dagster as dg
import numpy as np

from recsys_pipeline.assets.config import config_from_settings
from recsys_pipeline.assets.metadata import image
from recsys_pipeline.assets.versions import (
    data_version,
    published,
    reading,
    unchanged,
)
from recsys_pipeline.compute import training_step
from recsys_pipeline.enrichment.text_vectors import EmbeddingSettings
from recsys_pipeline.resources.storage import RecsysStorage
from recsys_pipeline.settings import Settings

PLOTTED = 3000


def definitions(settings: Settings) -> dg.Definitions:
    ItemEmbeddingsConfig = config_from_settings(
        "ItemEmbeddingsConfig",
        settings.profile.embedding,
        "How item texts become the model's initial item rows; defaults from the profile.",
    )

    @dg.asset(
        group_name="model",
        kinds={"numpy", "parquet"},
        deps=["tokenizer", "sequences", "item_profiles"],
        **training_step(settings),
    )
    def item_embeddings(
        context: dg.AssetExecutionContext, config: ItemEmbeddingsConfig, storage: RecsysStorage
    ) -> dg.MaterializeResult:
        """Sentence embeddings of each item's text; items without usable text take the mean of
        their co-occurring neighbours (training parts only); PCA to the model's hidden size."""
        return embed_items(context, config.settings(), storage)

    return dg.Definitions(assets=[item_embeddings])


def embed_items(
    context: dg.AssetExecutionContext, settings: EmbeddingSettings, storage: RecsysStorage
) -> dg.MaterializeResult:
    from recsys_pipeline.assets.plots import scatter_png
    from recsys_pipeline.data.split import read_split
    from recsys_pipeline.data.vocab import load_titles, load_vocab
    from recsys_pipeline.enrichment.profiles import read_profiles
    from recsys_pipeline.enrichment.text_vectors import (
        SOURCE_NEIGHBOURS,
        SOURCE_RANDOM,
        SOURCE_TEXT,
        build_item_vectors,
        profile_texts,
        write_vectors,
    )
    from recsys_pipeline.models.precision import default_device

    store = storage.artifacts()
    with reading(context, storage, "tokenizer", "sequences", "item_profiles") as inputs:
        version = data_version(context, inputs, settings.model_dump())
        if (same := unchanged(context, storage, version)) is not None:
            return same
        vocab = load_vocab(inputs["tokenizer"])
        texts = load_titles(inputs["tokenizer"])
        if settings.text == "profile":
            texts = profile_texts(texts, read_profiles(inputs["item_profiles"]))
        split = read_split(inputs["sequences"])
    device = default_device()
    context.log.info(f"encoding {len(texts)} item texts with {settings.model} on {device}")
    built = build_item_vectors(texts, split.train, vocab, settings, device, context.log.info)

    rng = np.random.default_rng(settings.seed)
    sample = rng.choice(vocab.n_items, min(PLOTTED, vocab.n_items), replace=False)
    plot = scatter_png(
        built.vectors[sample, :2], built.source[sample], "Item vectors, first two components"
    )
    with store.writing("item_embeddings") as folder:
        write_vectors(folder, built.vectors, vocab, built.source)
        (folder / "projection.png").write_bytes(plot)

    counts = {s: int((built.source == s).sum()) for s in (SOURCE_TEXT, SOURCE_NEIGHBOURS)}
    return published(
        context,
        store,
        version,
        {
            "items": vocab.n_items,
            "model": settings.model,
            "text": settings.text,
            "dimensions": settings.dimensions,
            "raw_dimensions": built.raw_dimensions,
            "explained_variance": built.explained_variance,
            "coverage": counts[SOURCE_TEXT] / vocab.n_items,
            "filled_from_neighbours": counts[SOURCE_NEIGHBOURS],
            "random": int((built.source == SOURCE_RANDOM).sum()),
            "projection": image(plot, "2-D projection of a sample of item vectors"),
        },
    )
