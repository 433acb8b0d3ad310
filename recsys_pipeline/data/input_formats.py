"""The two input formats, told apart by their header, and what both parse into.

- The course CSV, one row per user: ``user_id,history_item_id,history_item_title`` with list
  literals (``input_csv.py``).
- An interaction log, one row per event: ``user_id,item_id,timestamp[,title]``, CSV or parquet
  (``interaction_log.py``).

Ids are the input's own and keep their kind in every artifact and output:
- in a text column (the CSV's ``user_id``, the log's ids), a column whose every id is a
  canonical integer (``42``, not ``042``) holds integers, and any other column holds strings,
  each exactly as written: the documented coercion for text, where ``"7"`` and ``7`` look alike;
- in the course CSV's list literals the kind is written (``[1, 2]`` vs ``['B01', 'B02']``), and
  one column mixing both is an error naming the column and a row of each kind.
Integer item ids must be positive (0 is the padding token). String ids must not be empty nor hold
whitespace, ``<`` or ``>`` (item tokens are spelled ``<id>``).

Problems with the file as a whole raise :class:`InputFileError` naming the file, line and field;
a problem confined to one row quarantines it with its reason; more than the allowed share of
quarantined rows is an error again, because then the file is probably not what the user meant.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recsys_pipeline.data.histories import Histories, as_ids, ids_from_arrow

CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_UNSAFE = re.compile(r"[\s<>]")
_QUARANTINE_EXAMPLES = 5
SEQUENCE_COLUMNS = ("user_id", "history_item_id", "history_item_title")
LOG_COLUMNS = ("user_id", "item_id", "timestamp")


class InputFileError(ValueError):
    """The input file cannot be used; the message names the file, line and field."""

    def __init__(self, path: Path, message: str, line: int | None = None, field: str | None = None):
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.field = path, line, field


class RowError(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field, self.reason = field, reason


@dataclass(frozen=True)
class QuarantinedRow:
    line: int
    field: str
    reason: str
    user_id: str  # the raw cell, cut short: the row may not even have a valid id


@dataclass
class ParsedSequences:
    histories: Histories  # valid rows only, the input's own ids
    titles: dict  # one title per item id
    rows_read: int
    sha256: str  # of the bytes parsed: the data version of raw_csv
    format: str = "sequences"  # "sequences" (the course CSV) or "log"
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    title_conflicts: int = 0  # items seen with more than one distinct title
    ignored_columns: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # format-specific repairs, e.g. duplicates


class HashingReader(io.RawIOBase):
    """A binary file that feeds every byte it reads into ``digest``: the digest of exactly what
    was parsed, computed while parsing."""

    def __init__(self, raw: io.RawIOBase, digest: hashlib._Hash) -> None:
        self.raw, self.digest = raw, digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        count = self.raw.readinto(buffer)
        if count:
            self.digest.update(memoryview(buffer)[:count])
        return count

    def close(self) -> None:
        self.raw.close()
        super().close()


def string_id_problem(text: str) -> str | None:
    """Why ``text`` cannot be a string id, or None."""
    if not text:
        return "an empty id"
    if _UNSAFE.search(text):
        return f"an id with whitespace, '<' or '>': {text[:40]!r}"
    return None


def text_ids(values: list[str]) -> np.ndarray:
    """A text column's ids: integers when every one is a canonical integer, else the strings."""
    if values and all(CANONICAL_INT.fullmatch(v) for v in values):
        return np.array([int(v) for v in values], dtype=np.int64)
    return as_ids(values)


def check_quarantine(path: Path, parsed: ParsedSequences, max_fraction: float) -> None:
    quarantined, rows = parsed.quarantined, parsed.rows_read
    if rows == 0:
        raise InputFileError(path, "the file has a header but no data rows", line=2)
    if len(parsed.histories) and len(quarantined) <= max_fraction * rows:
        return
    examples = "; ".join(
        f"line {q.line}, field '{q.field}': {q.reason}" for q in quarantined[:_QUARANTINE_EXAMPLES]
    )
    raise InputFileError(
        path,
        f"{len(quarantined)} of {rows} rows are invalid (more than {max_fraction:.0%} allowed); "
        f"first: {examples}",
        line=quarantined[0].line if quarantined else None,
        field=quarantined[0].field if quarantined else None,
    )


def most_frequent_titles(counts: dict[object, Counter[str]]) -> tuple[dict, int]:
    """(title per item, items seen with conflicting titles): the most frequent title wins; a
    Counter keeps first-seen order, so a tie goes to the first seen."""
    titles = {item: c.most_common(1)[0][0] for item, c in counts.items()}
    return titles, sum(len(c) > 1 for c in counts.values())


def header_of(path: Path) -> list[str]:
    """Column names of a CSV or parquet input (a parquet file is told by its magic bytes)."""
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic == b"PAR1":
        return pq.read_schema(path).names
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        for row in csv.reader(handle):
            if any(cell.strip() for cell in row):
                return [cell.strip() for cell in row]
    raise InputFileError(path, "the file is empty (expected a header and at least one row)")


def parse_input(
    path: Path, max_quarantine_fraction: float = 0.1, items_file: Path | None = None
) -> ParsedSequences:
    """Parse the input in whichever format its header names; titles from ``items_file``
    (``item_id,title``) win over the input's own."""
    from recsys_pipeline.data.input_csv import parse_sequences_csv
    from recsys_pipeline.data.interaction_log import parse_interaction_log

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "file not found")
    names = header_of(path)
    if all(name in names for name in LOG_COLUMNS):
        parsed = parse_interaction_log(path)
    elif all(name in names for name in SEQUENCE_COLUMNS):
        parsed = parse_sequences_csv(path)
    else:
        # the format the header comes closest to names what it misses
        log_like = "item_id" in names or "timestamp" in names
        wanted = LOG_COLUMNS if log_like else SEQUENCE_COLUMNS
        missing = [n for n in wanted if n not in names]
        raise InputFileError(
            path,
            f"missing required column(s) {missing}; the header has {names} (expected the course "
            f"CSV's columns {list(SEQUENCE_COLUMNS)} or an interaction log's {list(LOG_COLUMNS)} "
            "+ optional title)",
            line=1,
            field=missing[0],
        )
    check_quarantine(path, parsed, max_quarantine_fraction)
    if items_file is not None:
        parsed.titles.update(read_item_titles(Path(items_file), parsed.histories.items))
    return parsed


def read_item_titles(path: Path, items: np.ndarray) -> dict:
    """``item_id,title`` rows for the items of ``items``, ids read as the input's kind."""
    if not path.is_file():
        raise InputFileError(path, "items file not found")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("item_id", "title") if c not in (reader.fieldnames or [])]
        if missing:
            raise InputFileError(path, f"missing column(s) {missing}", line=1, field=missing[0])
        rows = [(row["item_id"].strip(), row["title"]) for row in reader]
    strings = items.dtype.kind == "U"
    titles = {}
    for line, (item, title) in enumerate(rows, start=2):
        if not strings and not CANONICAL_INT.fullmatch(item):
            raise InputFileError(path, f"{item!r} is not an integer id", line=line, field="item_id")
        titles[item if strings else int(item)] = title.strip()
    known = set(items.tolist())
    return {item: title for item, title in titles.items() if item in known}


# --- the raw_csv artifact ------------------------------------------------------------------------

USERS_FILE = "users.parquet"
ITEMS_FILE = "items.parquet"
QUARANTINE_FILE = "quarantine.parquet"


def write_parsed(parsed: ParsedSequences, folder: Path) -> None:
    histories = parsed.histories
    pq.write_table(
        pa.table({"user_id": pa.array(histories.user_ids), "item_ids": histories.to_arrow()}),
        folder / USERS_FILE,
    )
    item_ids = as_ids(sorted(parsed.titles))
    pq.write_table(
        pa.table(
            {
                "item_id": pa.array(item_ids),
                "title": pa.array([parsed.titles[i] for i in item_ids.tolist()], pa.string()),
            }
        ),
        folder / ITEMS_FILE,
    )
    pq.write_table(
        pa.Table.from_pylist(
            [vars(q) for q in parsed.quarantined],
            schema=pa.schema(
                [
                    ("line", pa.int64()),
                    ("field", pa.string()),
                    ("reason", pa.string()),
                    ("user_id", pa.string()),
                ]
            ),
        ),
        folder / QUARANTINE_FILE,
    )


def read_histories(folder: Path) -> Histories:
    table = pq.read_table(folder / USERS_FILE)
    return Histories.from_arrow(table.column("user_id"), table.column("item_ids"))


def read_catalog(folder: Path) -> tuple[np.ndarray, list[str]]:
    """(sorted item ids, titles) of the raw_csv artifact."""
    table = pq.read_table(folder / ITEMS_FILE)
    return ids_from_arrow(table.column("item_id")), table.column("title").to_pylist()
