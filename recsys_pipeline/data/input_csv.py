"""Parse and validate the input CSV (``user_id,history_item_id,history_item_title``).

The file is read row by row (a 2 GB file streams; only the parsed integers and one title per item
stay in memory). Problems with the file as a whole raise :class:`InputFileError` naming the file,
line and field. Problems confined to one row quarantine that row with a reason; too many
quarantined rows is again an error, because then the file is probably not what the user meant.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import html
import io
import json
import re
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recsys_pipeline.data.histories import Histories

USER_COLUMN = "user_id"
ITEMS_COLUMN = "history_item_id"
TITLES_COLUMN = "history_item_title"
REQUIRED_COLUMNS = (USER_COLUMN, ITEMS_COLUMN, TITLES_COLUMN)

# One field may hold a whole user history; csv's default limit (128 KiB) is too small for that.
MAX_FIELD_BYTES = 64 * 1024 * 1024
_SURROGATE = re.compile("[\udc80-\udcff]")
_MISSING_MARKERS = {"", "nan", "none", "null", "na", "n/a"}
_QUARANTINE_EXAMPLES = 5


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
    histories: Histories  # valid rows only
    titles: dict[int, str]  # one title per item id
    rows_read: int
    sha256: str  # of the bytes parsed: the data version of raw_csv
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    title_conflicts: int = 0  # items seen with more than one distinct title
    ignored_columns: list[str] = field(default_factory=list)


def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in _MISSING_MARKERS


def _parse_user_id(cell: str) -> int:
    if _is_missing(cell):
        raise RowError(USER_COLUMN, "empty or NaN cell")
    try:
        return int(cell.strip())
    except ValueError:
        raise RowError(USER_COLUMN, f"not an integer: {cell.strip()[:40]!r}") from None


def _literal_list(cell: str, column: str, try_json: bool) -> list:
    if _is_missing(cell):
        raise RowError(column, "empty or NaN cell")
    text = cell.strip()
    try:
        # ints-only lists are valid JSON, and json is ~8x faster than literal_eval
        if not try_json:
            raise ValueError
        value = json.loads(text)
    except ValueError:
        try:
            # literal_eval evaluates literals only: calls such as __import__('os') are refused.
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise RowError(column, f"not a Python list literal: {text[:40]!r}") from None
    if not isinstance(value, list | tuple):
        raise RowError(column, f"not a list but {type(value).__name__}: {text[:40]!r}")
    return list(value)


def _parse_items(cell: str) -> list[int]:
    items = _literal_list(cell, ITEMS_COLUMN, try_json=True)
    if not items:
        raise RowError(ITEMS_COLUMN, "empty history")
    for position, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, int):
            raise RowError(ITEMS_COLUMN, f"element {position} is not an integer id: {item!r:.40}")
        if item <= 0:
            raise RowError(ITEMS_COLUMN, f"element {position} is not a positive id: {item}")
    return items


def _parse_titles(cell: str, n_items: int) -> list[str]:
    titles = _literal_list(cell, TITLES_COLUMN, try_json=False)  # quoted with '
    if len(titles) != n_items:
        raise RowError(TITLES_COLUMN, f"{len(titles)} titles for {n_items} item ids")
    for position, title in enumerate(titles):
        if not isinstance(title, str):
            raise RowError(TITLES_COLUMN, f"element {position} is not a string: {title!r:.40}")
    return [html.unescape(title).strip() for title in titles]


class _Hashing(io.RawIOBase):
    """A binary file that feeds every byte it reads into ``digest``."""

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


def _rows(path: Path, digest: hashlib._Hash) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of each record; header first. ``digest`` sees the file's
    bytes as they are read: at the end it is the digest of exactly what was parsed."""
    # utf-8-sig drops a BOM; surrogateescape lets one bad byte quarantine its row instead of
    # aborting the whole file; newline="" lets csv handle CRLF and quoted line breaks.
    binary = io.BufferedReader(_Hashing(path.open("rb", buffering=0), digest), 1 << 20)
    with io.TextIOWrapper(
        binary, encoding="utf-8-sig", errors="surrogateescape", newline=""
    ) as handle:
        reader = csv.reader(handle)
        line = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InputFileError(path, f"malformed CSV: {exc}", line=reader.line_num) from exc
            yield line, row
            line = reader.line_num + 1


def _read_header(path: Path, rows: Iterator[tuple[int, list[str]]]) -> list[str]:
    for _line, header in rows:
        if any(cell.strip() for cell in header):
            names = [cell.strip() for cell in header]
            missing = [name for name in REQUIRED_COLUMNS if name not in names]
            if missing:
                raise InputFileError(
                    path,
                    f"missing required column(s) {missing}; the header has {names} "
                    f"(expected {list(REQUIRED_COLUMNS)})",
                    line=1,
                    field=missing[0],
                )
            return names
    raise InputFileError(path, "the file is empty (expected a header and at least one row)")


def parse_sequences_csv(path: Path, max_quarantine_fraction: float = 0.1) -> ParsedSequences:
    """Parse the input CSV; raise InputFileError when the file as a whole is unusable."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "file not found")
    csv.field_size_limit(MAX_FIELD_BYTES)

    digest = hashlib.sha256()
    rows = _rows(path, digest)
    header = _read_header(path, rows)
    col = {name: header.index(name) for name in REQUIRED_COLUMNS}
    ignored = [name for name in header if name not in REQUIRED_COLUMNS]

    user_ids = array("q")
    offsets = array("q", [0])
    items = array("q")
    title_counts: dict[int, Counter[str]] = {}
    first_line_of_user: dict[int, int] = {}
    quarantined: list[QuarantinedRow] = []
    rows_read = 0

    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue  # blank line, e.g. a trailing newline
        rows_read += 1
        raw_user = row[col[USER_COLUMN]][:40] if len(row) > col[USER_COLUMN] else ""
        try:
            if len(row) != len(header):
                raise RowError("(row)", f"{len(row)} fields where the header has {len(header)}")
            for name, index in col.items():
                if _SURROGATE.search(row[index]):
                    raise RowError(name, "bytes that are not valid UTF-8")
            user = _parse_user_id(row[col[USER_COLUMN]])
            if user in first_line_of_user:
                raise RowError(
                    USER_COLUMN,
                    f"duplicate user_id {user} (first at line {first_line_of_user[user]})",
                )
            history = _parse_items(row[col[ITEMS_COLUMN]])
            titles = _parse_titles(row[col[TITLES_COLUMN]], len(history))
        except RowError as exc:
            quarantined.append(QuarantinedRow(line, exc.field, exc.reason, raw_user))
            continue
        first_line_of_user[user] = line
        user_ids.append(user)
        items.extend(history)
        offsets.append(len(items))
        for item, title in zip(history, titles, strict=True):
            counts = title_counts.get(item)
            if counts is None:
                title_counts[item] = counts = Counter()
            counts[title] += 1

    if rows_read == 0:
        raise InputFileError(path, "the file has a header but no data rows", line=2)
    if len(user_ids) == 0 or len(quarantined) > max_quarantine_fraction * rows_read:
        examples = "; ".join(
            f"line {q.line}, field '{q.field}': {q.reason}"
            for q in quarantined[:_QUARANTINE_EXAMPLES]
        )
        raise InputFileError(
            path,
            f"{len(quarantined)} of {rows_read} rows are invalid (more than "
            f"{max_quarantine_fraction:.0%} allowed); first: {examples}",
            line=quarantined[0].line,
            field=quarantined[0].field,
        )

    # Most frequent title per id; Counter keeps first-seen order, so ties go to the first seen.
    titles = {item: counts.most_common(1)[0][0] for item, counts in title_counts.items()}
    return ParsedSequences(
        histories=Histories(
            user_ids=np.frombuffer(user_ids, dtype=np.int64).copy(),
            offsets=np.frombuffer(offsets, dtype=np.int64).copy(),
            items=np.frombuffer(items, dtype=np.int64).copy(),
        ),
        titles=titles,
        rows_read=rows_read,
        sha256=digest.hexdigest(),
        quarantined=quarantined,
        title_conflicts=sum(len(counts) > 1 for counts in title_counts.values()),
        ignored_columns=ignored,
    )


# --- parquet form of the parsed table ---------------------------------------------------------

USERS_FILE = "users.parquet"
ITEMS_FILE = "items.parquet"
QUARANTINE_FILE = "quarantine.parquet"


def write_parsed(parsed: ParsedSequences, folder: Path) -> None:
    histories = parsed.histories
    pq.write_table(
        pa.table({"user_id": pa.array(histories.user_ids), "item_ids": histories.to_arrow()}),
        folder / USERS_FILE,
    )
    item_ids = sorted(parsed.titles)
    pq.write_table(
        pa.table(
            {
                "item_id": pa.array(item_ids, pa.int64()),
                "title": pa.array([parsed.titles[i] for i in item_ids], pa.string()),
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
    return table.column("item_id").to_numpy(), table.column("title").to_pylist()
