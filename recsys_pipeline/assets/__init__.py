"""The Dagster layer: one module per stage, named after the asset it builds (``wiki_enrichment``
also builds ``wiki_summaries``), each a thin asset over the plain code; plus launch, config,
failure, metadata and plot helpers. Every asset module's ``definitions(settings)`` returns its
assets and checks with the profile's defaults."""

from recsys_pipeline.assets import (
    dpo_checkpoint,
    dpo_pairs,
    evaluation,
    faiss_index,
    item_embeddings,
    item_profiles,
    predictions,
    raw_csv,
    sequences,
    served_model,
    sft_checkpoint,
    steam_enrichment,
    tokenizer,
    wiki_enrichment,
)

ASSET_MODULES = (
    raw_csv,
    sequences,
    tokenizer,
    steam_enrichment,
    wiki_enrichment,
    item_profiles,
    item_embeddings,
    sft_checkpoint,
    dpo_pairs,
    dpo_checkpoint,
    served_model,
    faiss_index,
    predictions,
    evaluation,
)
