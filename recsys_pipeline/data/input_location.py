"""Where the input CSV comes from: RECSYS_RAW_CSV, else $RECSYS_DATA_DIR/raw/sequences.csv, else
the public Amazon 2018 dump, downloaded and converted once into that default location."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recsys_pipeline.data.amazon import META_URL, REVIEWS_URL, BuildStats, build_sequences_csv
from recsys_pipeline.data.download import Downloaded, DownloadError, download

HOW_TO_POINT = (
    "Point RECSYS_RAW_CSV at a CSV with columns user_id,history_item_id,history_item_title, or "
    "at an interaction log with columns user_id,item_id,timestamp[,title] (CSV or parquet; e.g. "
    "RECSYS_RAW_CSV=../shared/data/amazon-games/sequences.csv), or place one at {default}."
)


class InputUnavailableError(RuntimeError):
    pass


@dataclass(frozen=True)
class InputCsv:
    path: Path
    origin: str  # "RECSYS_RAW_CSV", "data dir" or "amazon-2018 download"
    downloads: list[Downloaded] = field(default_factory=list)
    build: BuildStats | None = None


def locate_input_csv(
    explicit: Path | None,
    default: Path,
    offline: bool,
    reviews_url: str = REVIEWS_URL,
    meta_url: str = META_URL,
    attempts: int = 5,
    timeout_s: float = 60.0,
) -> InputCsv:
    if explicit is not None:
        # An explicit path is never replaced by a download: a typo must be an error.
        return InputCsv(explicit, "RECSYS_RAW_CSV")
    if default.is_file():
        return InputCsv(default, "data dir")
    hint = HOW_TO_POINT.format(default=default)
    if offline:
        raise InputUnavailableError(
            f"no input CSV at {default} and RECSYS_OFFLINE=1 forbids downloading the Amazon "
            f"2018 dump. {hint}"
        )
    downloads_dir = default.parent / "downloads"
    try:
        fetched = [
            download(
                url, downloads_dir / url.rsplit("/", 1)[-1], attempts=attempts, timeout_s=timeout_s
            )
            for url in (reviews_url, meta_url)
        ]
    except DownloadError as exc:
        raise InputUnavailableError(f"{exc}. No input CSV at {default}. {hint}") from exc
    stats = build_sequences_csv(fetched[0].path, fetched[1].path, default)
    return InputCsv(default, "amazon-2018 download", fetched, stats)
