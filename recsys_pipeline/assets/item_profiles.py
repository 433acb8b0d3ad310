"""item_profiles: one profile text per item, merged from its Steam match and extracted facts."""

import dagster as dg

from recsys_pipeline.assets.metadata import markdown_table
from recsys_pipeline.resources import RecsysStorage
from recsys_pipeline.settings import Settings

SHOWN = 8


@dg.asset(
    group_name="enrichment",
    kinds={"parquet"},
    deps=["steam_enrichment", "wiki_enrichment", "tokenizer"],
)
def item_profiles(storage: RecsysStorage) -> dg.MaterializeResult:
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

    artifacts = storage.artifacts()
    catalog = artifacts.path("tokenizer")
    titles = load_titles(catalog)
    steam = read_steam_facts(artifacts.path("steam_enrichment"))
    extracted = read_facts(artifacts.path("wiki_enrichment"))
    merged = [merge_facts(s, e) for s, e in zip(steam, extracted, strict=True)]
    profiles = [profile_text(t, f) for t, f in zip(titles, merged, strict=True)]
    with artifacts.writing("item_profiles") as folder:
        write_profiles(folder, load_vocab(catalog).item_ids, profiles)
    return dg.MaterializeResult(
        metadata={
            "items": len(profiles),
            "known_share": known_shares(merged),
            "examples": markdown_table(["profile"], [(p,) for p in profiles[:SHOWN]]),
        }
    )


def definitions(_settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[item_profiles])
