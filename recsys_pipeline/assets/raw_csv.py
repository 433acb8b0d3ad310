"""raw_csv: the input parsed and validated into a typed table; input_file: the input file itself,
an observed source whose data version is the sha256 of its bytes."""

import hashlib
from collections import Counter

import dagster as dg
from pydantic import Field

from recsys_pipeline.assets.failures import failing_clearly
from recsys_pipeline.assets.metadata import image, markdown_table, schema
from recsys_pipeline.assets.plots import histogram_png
from recsys_pipeline.assets.versions import published
from recsys_pipeline.automation import OBSERVE, ON_UPSTREAM_CHANGE
from recsys_pipeline.data.download import sha256_of
from recsys_pipeline.data.histories import is_string_ids
from recsys_pipeline.data.input_formats import InputFileError, write_parsed
from recsys_pipeline.data.input_location import InputUnavailableError
from recsys_pipeline.data.input_parsing import parse_input
from recsys_pipeline.resources.files import InputSource
from recsys_pipeline.resources.storage import RecsysStorage
from recsys_pipeline.settings import Settings

QUARANTINE_SHOWN = 20


class RawCsvConfig(dg.Config):
    max_quarantine_fraction: float = Field(
        0.1, ge=0.0, le=1.0, description="more invalid rows than this share fails the asset"
    )


ABSENT = "absent"


# An observed asset defined directly: `observable_source_asset` builds a SourceAsset (deprecated),
# which Dagster converts into this same definition. Beta, pinned in test_contracts.py.
@dg.multi_observable_source_asset(
    specs=[dg.AssetSpec("input_file", group_name="data", automation_condition=OBSERVE)]
)
def input_file(input_source: InputSource, storage: RecsysStorage) -> dg.ObserveResult:
    """The input file raw_csv reads: its data version is the sha256 of its bytes, so touching it
    changes nothing, while new bytes, even a return to earlier ones, start raw_csv+."""
    path = input_source.input_path(storage.raw_dir)
    if not path.is_file():
        return dg.ObserveResult(
            data_version=dg.DataVersion(ABSENT), metadata={"path": str(path), "present": False}
        )
    return dg.ObserveResult(
        data_version=dg.DataVersion(sha256_of(path)),
        metadata={"path": str(path), "present": True, "bytes": path.stat().st_size},
    )


@dg.asset(
    group_name="data",
    kinds={"csv", "parquet"},
    deps=[input_file],
    automation_condition=ON_UPSTREAM_CHANGE,
)
def raw_csv(
    context: dg.AssetExecutionContext,
    config: RawCsvConfig,
    storage: RecsysStorage,
    input_source: InputSource,
) -> dg.MaterializeResult:
    """The purchases, validated: the course CSV or an interaction log, one typed row per user in
    the input's own ids, malformed rows quarantined."""
    items_file = input_source.items_path()
    with failing_clearly(InputFileError, InputUnavailableError):
        source = input_source.locate(storage.raw_dir)
        parsed = parse_input(source.path, config.max_quarantine_fraction, items_file)
    if parsed.quarantined:
        context.log.warning(
            f"{len(parsed.quarantined)} of {parsed.rows_read} rows quarantined "
            f"(see quarantine.parquet); first: {parsed.quarantined[0].file}, "
            f"line {parsed.quarantined[0].line}, "
            f"field '{parsed.quarantined[0].field}': {parsed.quarantined[0].reason}"
        )

    lengths = parsed.histories.lengths
    plot = histogram_png(lengths, "History length per user", "items")
    store = storage.artifacts()
    with store.writing("raw_csv") as folder:
        write_parsed(parsed, folder)
        (folder / "length_histogram.png").write_bytes(plot)

    metadata: dict[str, object] = {
        "dagster/row_count": len(parsed.histories),
        "dagster/column_schema": schema(
            user_id=id_type(parsed.histories.user_ids),
            item_ids=f"list<{id_type(parsed.histories.items)}>",
        ),
        "format": parsed.format,
        "layout": parsed.layout,
        **parsed.counts,
        "source": source.origin,
        "source_path": dg.MetadataValue.path(str(source.path)),
        "source_sha256": parsed.sha256,
        "rows_read": parsed.rows_read,
        "users": len(parsed.histories),
        "items": len(parsed.titles),
        "interactions": int(lengths.sum()),
        "mean_length": float(lengths.mean()),
        "max_length": int(lengths.max()),
        "length_histogram": image(plot, "history length histogram"),
        "quarantined_rows": len(parsed.quarantined),
        **{
            f"quarantined/{name}": count
            for name, count in Counter(q.field for q in parsed.quarantined).items()
        },
        "quarantine": markdown_table(
            ["line", "field", "reason", "file"],
            [(q.line, q.field, q.reason, q.file) for q in parsed.quarantined[:QUARANTINE_SHOWN]],
        ),
        "items_with_conflicting_titles": parsed.title_conflicts,
        "ignored_columns": ", ".join(parsed.ignored_columns),
    }
    for fetched in source.downloads:
        metadata[f"download_{fetched.path.name}_sha256"] = fetched.sha256
        metadata[f"download_{fetched.path.name}_bytes"] = fetched.bytes
    if source.build is not None:
        metadata["duplicate_reviews_dropped"] = source.build.duplicate_reviews
        metadata["items_without_title"] = source.build.items_without_title
    # the fixed contract: raw_csv's data version is the sha256 of the bytes it read (with an
    # items file, of both files' digests: its titles are read too)
    version = parsed.sha256
    if items_file is not None:
        version = hashlib.sha256(f"{version}:{sha256_of(items_file)}".encode()).hexdigest()
        metadata["items_file_sha256"] = sha256_of(items_file)
    return published(context, store, dg.DataVersion(version), metadata)


def id_type(ids: object) -> str:
    return "string" if is_string_ids(ids) else "int64"


def definitions(_settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[input_file, raw_csv])
