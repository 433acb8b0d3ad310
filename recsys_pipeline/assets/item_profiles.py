"""item_profiles: one profile text per item, merged from its Steam match and extracted facts."""

import dagster as dg

from recsys_pipeline.assets.metadata import markdown_table
from recsys_pipeline.assets.versions import data_version, published, reading
from recsys_pipeline.automation import ON_UPSTREAM_CHANGE
from recsys_pipeline.resources.storage import RecsysStorage
from recsys_pipeline.settings import Settings

SHOWN = 8


@dg.asset(
    group_name="enrichment",
    kinds={"parquet"},
    deps=["steam_enrichment", "wiki_enrichment", "tokenizer"],
    automation_condition=ON_UPSTREAM_CHANGE,
)
def item_profiles(
    context: dg.AssetExecutionContext, storage: RecsysStorage
) -> dg.MaterializeResult:
    """One profile text per item: "Item Title: …; Item Type: …; Release Year: …; Genres: …;
    Platform: …; Price: … USD; Developers: …" (Steam preferred, lists unioned)."""
    from recsys_pipeline.data.vocab import load_titles, load_vocab
    from recsys_pipeline.enrichment.facts import read_facts
    from recsys_pipeline.enrichment.profiles import (
        known_shares,
        merge_facts,
        profile_text,
        write_profiles,
    )
    from recsys_pipeline.enrichment.steam import read_steam_facts

    store = storage.artifacts()
    with reading(context, storage, "tokenizer", "steam_enrichment", "wiki_enrichment") as inputs:
        titles = load_titles(inputs["tokenizer"])
        item_ids = load_vocab(inputs["tokenizer"]).item_ids
        steam = read_steam_facts(inputs["steam_enrichment"])
        extracted = read_facts(inputs["wiki_enrichment"])
    merged = [merge_facts(s, e) for s, e in zip(steam, extracted, strict=True)]
    profiles = [profile_text(t, f) for t, f in zip(titles, merged, strict=True)]
    with store.writing("item_profiles") as folder:
        write_profiles(folder, item_ids, profiles)
    return published(
        context,
        store,
        data_version(context, inputs, {}),
        {
            "items": len(profiles),
            **{f"known_share/{name}": share for name, share in known_shares(merged).items()},
            "examples": markdown_table(["profile"], [(p,) for p in profiles[:SHOWN]]),
        },
    )


def definitions(_settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[item_profiles])
