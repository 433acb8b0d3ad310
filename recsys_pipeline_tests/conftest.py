from __future__ import annotations

import csv
import os
import random
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import dagster as dg
import pytest

from recsys_pipeline.resources import (
    InputSource,
    LLMService,
    RecsysStorage,
    SteamSource,
    WikipediaAPI,
)
from recsys_pipeline.settings import SHARED_SEQUENCES

REPO = Path(__file__).resolve().parents[1]
HEADER = ["user_id", "history_item_id", "history_item_title"]
T = TypeVar("T")

# Tests never touch the network or a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RECSYS_OFFLINE", "1")


def write_rows(path: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def peak_memory(call: Callable[[], T]) -> tuple[T, int]:
    """(what ``call()`` returns, the peak bytes Python and numpy allocated while it ran)."""
    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def title_of(item: int) -> str:
    return f"Game {item} - PC" if item % 3 else f"Console &amp; Controller {item}"


def tiny_rows(n_users: int = 60, n_items: int = 40, seed: int = 0) -> list[list[object]]:
    """Users walk through items with a strong 'next item' habit, so models can learn something."""
    rng = random.Random(seed)
    rows = []
    for user in range(n_users):
        length = rng.randint(2, 12)
        start = rng.randint(1, n_items)
        items = [
            (start + step * rng.choice([1, 1, 1, 2]) - 1) % n_items + 1 for step in range(length)
        ]
        items = list(dict.fromkeys(items))  # no repeats, like the 5-core data
        rows.append([user, str(items), str([title_of(i) for i in items])])
    return rows


@pytest.fixture
def instance():
    """A throwaway instance, disposed after the test: an undisposed one leaves its temporary
    folder to the garbage collector, a ResourceWarning."""
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    return write_rows(tmp_path / "sequences.csv", tiny_rows())


@pytest.fixture
def resources_for(tmp_path: Path):
    """Dagster resources that read ``csv_path`` and write artifacts under tmp_path/data."""

    def build(csv_path: Path | None, **overrides: object) -> dict[str, object]:
        """Offline everywhere, no Steam file; ``overrides`` replace whole resources."""
        return {
            "storage": RecsysStorage(data_dir=str(tmp_path / "data")),
            "input_source": InputSource(raw_csv=str(csv_path) if csv_path else None, offline=True),
            "steam_source": SteamSource(),
            "wikipedia": WikipediaAPI(offline=True),
            "llm": LLMService(offline=True),
            **overrides,
        }

    return build


@pytest.fixture
def shared_sequences() -> Path:
    if not SHARED_SEQUENCES.is_file():
        pytest.skip(f"real data not found at {SHARED_SEQUENCES} (../shared/data is absent here)")
    return SHARED_SEQUENCES
