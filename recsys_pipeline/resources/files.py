"""Where the input files come from: the purchase sequences and the Steam games table."""

from pathlib import Path

import dagster as dg

from recsys_pipeline.data.amazon import META_URL, REVIEWS_URL
from recsys_pipeline.data.input_location import InputCsv, locate_input_csv


class InputSource(dg.ConfigurableResource):
    """Where raw_csv reads from; the dump URLs are configurable so tests can serve them locally."""

    raw_csv: str | None = None  # RECSYS_RAW_CSV: the course CSV or an interaction log
    items_csv: str | None = None  # RECSYS_ITEMS_CSV: item_id,title, when titles come apart
    offline: bool = False  # RECSYS_OFFLINE
    reviews_url: str = REVIEWS_URL
    meta_url: str = META_URL
    download_attempts: int = 5
    timeout_s: float = 60.0

    def input_path(self, raw_dir: Path) -> Path:
        """The CSV raw_csv reads when it exists (no download is attempted here)."""
        return Path(self.raw_csv).resolve() if self.raw_csv else raw_dir / "sequences.csv"

    def items_path(self) -> Path | None:
        return Path(self.items_csv).resolve() if self.items_csv else None

    def locate(self, raw_dir: Path) -> InputCsv:
        return locate_input_csv(
            explicit=Path(self.raw_csv).resolve() if self.raw_csv else None,
            default=raw_dir / "sequences.csv",
            offline=self.offline,
            reviews_url=self.reviews_url,
            meta_url=self.meta_url,
            attempts=self.download_attempts,
            timeout_s=self.timeout_s,
        )


class SteamSource(dg.ConfigurableResource):
    path: str | None = None  # RECSYS_STEAM_CSV; None: $RECSYS_DATA_DIR/raw/steam.csv if present

    def locate(self, raw_dir: Path) -> Path | None:
        """The Steam games file: the configured one (which must then exist; loading it says so
        otherwise), else the data folder's default when it is there."""
        if self.path:
            return Path(self.path).resolve()
        default = raw_dir / "steam.csv"
        return default if default.is_file() else None
