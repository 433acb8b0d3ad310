from pathlib import Path

import dagster as dg

from recsys_pipeline.amazon_source import META_URL, REVIEWS_URL
from recsys_pipeline.input_source import InputCsv, locate_input_csv


class InputSource(dg.ConfigurableResource):
    """Where raw_csv reads from; the dump URLs are configurable so tests can serve them locally."""

    raw_csv: str | None = None  # RECSYS_RAW_CSV
    offline: bool = False  # RECSYS_OFFLINE
    reviews_url: str = REVIEWS_URL
    meta_url: str = META_URL
    download_attempts: int = 5
    timeout_s: float = 60.0

    def input_path(self, raw_dir: Path) -> Path:
        """The CSV raw_csv reads when it exists (no download is attempted here)."""
        return Path(self.raw_csv).resolve() if self.raw_csv else raw_dir / "sequences.csv"

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
