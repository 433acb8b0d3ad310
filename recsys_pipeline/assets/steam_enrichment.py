"""steam_enrichment: each catalog item's Steam store game, with its year, price, developers and
genres."""

from collections import Counter

import dagster as dg
import numpy as np

from recsys_pipeline.assets.config import config_from_settings
from recsys_pipeline.assets.failures import failing_clearly
from recsys_pipeline.assets.metadata import markdown_table
from recsys_pipeline.assets.versions import (
    data_version,
    published,
    reading,
    unchanged,
)
from recsys_pipeline.automation import OBSERVE, ON_UPSTREAM_CHANGE
from recsys_pipeline.data.download import sha256_of
from recsys_pipeline.enrichment.steam import SteamMatchSettings
from recsys_pipeline.resources.files import SteamSource
from recsys_pipeline.resources.storage import RecsysStorage
from recsys_pipeline.settings import Settings

SHOWN = 8
NO_FILE = "none"


# observed like input_file (raw_csv.py): no deprecated SourceAsset; beta, see test_contracts.py
@dg.multi_observable_source_asset(
    specs=[dg.AssetSpec("steam_file", group_name="enrichment", automation_condition=OBSERVE)]
)
def steam_file(steam_source: SteamSource, storage: RecsysStorage) -> dg.ObserveResult:
    """The Steam games table steam_enrichment matches against: the sha256 of its bytes."""
    path = steam_source.locate(storage.raw_dir)
    if path is None or not path.is_file():
        return dg.ObserveResult(data_version=dg.DataVersion(NO_FILE), metadata={"present": False})
    return dg.ObserveResult(
        data_version=dg.DataVersion(sha256_of(path)),
        metadata={"path": str(path), "present": True, "bytes": path.stat().st_size},
    )


def definitions(settings: Settings) -> dg.Definitions:
    SteamEnrichmentConfig = config_from_settings(
        "SteamEnrichmentConfig",
        SteamMatchSettings(
            model=settings.profile.embedding.model,
            batch_size=settings.profile.embedding.batch_size,
        ),
        "How catalog titles are matched to Steam games.",
    )

    @dg.asset(
        group_name="enrichment",
        kinds={"parquet", "faiss"},
        deps=["tokenizer", steam_file],
        automation_condition=ON_UPSTREAM_CHANGE,
    )
    def steam_enrichment(
        context: dg.AssetExecutionContext,
        config: SteamEnrichmentConfig,
        storage: RecsysStorage,
        steam_source: SteamSource,
    ) -> dg.MaterializeResult:
        """Each item's Steam store game: exact normalised title, else nearest title embedding."""
        return match_catalog(context, config.settings(), storage, steam_source)

    return dg.Definitions(assets=[steam_file, steam_enrichment])


def match_catalog(
    context: dg.AssetExecutionContext,
    settings: SteamMatchSettings,
    storage: RecsysStorage,
    steam_source: SteamSource,
) -> dg.MaterializeResult:
    from recsys_pipeline.data.vocab import load_titles, load_vocab
    from recsys_pipeline.enrichment.steam import (
        SteamFileError,
        empty_games,
        load_steam_games,
        match_items,
        matches_table,
        write_matches,
    )
    from recsys_pipeline.enrichment.text_vectors import encode_texts

    store = storage.artifacts()
    path = steam_source.locate(storage.raw_dir)
    if path is None:
        context.log.warning(
            f"no Steam games file at {storage.raw_dir / 'steam.csv'} and RECSYS_STEAM_CSV is unset: "
            "items get no Steam facts"
        )
        loaded = empty_games()
    else:
        with failing_clearly(SteamFileError):
            loaded = load_steam_games(path)
    # The Steam file is an input too: the bytes read, not an observation of them, say which.
    file_sha = sha256_of(path) if path is not None else NO_FILE
    with reading(context, storage, "tokenizer") as inputs:
        version = data_version(
            context, inputs, {**settings.model_dump(), "steam_file_sha256": file_sha}
        )
        if (same := unchanged(context, storage, version)) is not None:
            return same
        catalog = inputs["tokenizer"]
        item_ids, titles = load_vocab(catalog).item_ids, load_titles(catalog)
    matches = match_items(
        titles,
        loaded.games,
        settings.threshold,
        lambda t: encode_texts(
            t, settings.model, batch_size=settings.batch_size, progress_log=context.log.info
        ),
    )
    table = matches_table(item_ids, loaded.games, matches)
    with store.writing("steam_enrichment") as folder:
        write_matches(table, folder)
    kinds = Counter(matches.kind.tolist())
    matched = np.flatnonzero(matches.game_row >= 0)
    examples = [
        (titles[i], table.matched_name.iat[i], f"{matches.score[i]:.2f}", matches.kind[i])
        for i in matched[:SHOWN]
    ]
    return published(
        context,
        store,
        version,
        {
            "source": str(path) if path else "none",
            "steam_file_sha256": file_sha,
            "format": loaded.format,
            "games": len(loaded.games),
            "broken_rows": loaded.broken_rows,
            "matched_exact": kinds.get("exact", 0),
            "matched_embedding": kinds.get("embedding", 0),
            "matched_share": len(matched) / max(1, len(item_ids)),
            "threshold": settings.threshold,
            "examples": markdown_table(["item", "Steam game", "score", "how"], examples),
        },
    )
