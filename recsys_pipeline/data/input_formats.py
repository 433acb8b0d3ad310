"""The two input formats, told apart by their header (``input_parsing.parse_input``), the rules
both follow, and what both parse into.

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
import html
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recsys_pipeline.data.histories import Histories, as_ids, ids_from_arrow, is_string_ids
from recsys_pipeline.data.input_errors import InputFileError, QuarantinedRow
from recsys_pipeline.data.input_streams import Layout, layout_of, open_text

CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_UNSAFE = re.compile(r"[\s<>]")
SURROGATE = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, kept by surrogateescape
_QUARANTINE_EXAMPLES = 5
SEQUENCE_COLUMNS = ("user_id", "history_item_id", "history_item_title")
LOG_COLUMNS = ("user_id", "item_id", "timestamp")


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
    layout: str = "utf-8 text"  # compression and encoding, as read (Layout.describe)


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
    raise _too_many_quarantined(path, quarantined, rows, max_fraction)


def _too_many_quarantined(
    path: Path, quarantined: list[QuarantinedRow], rows: int, max_fraction: float
) -> InputFileError:
    examples = "; ".join(
        f"line {q.line}, field '{q.field}': {q.reason}" for q in quarantined[:_QUARANTINE_EXAMPLES]
    )
    return InputFileError(
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


def header_of(path: Path, layout: Layout) -> list[str]:
    """Column names of a CSV or parquet input."""
    if layout.parquet:
        return pq.read_schema(path).names
    with open_text(path, layout, None) as handle:
        for row in csv.reader(handle):
            if any(cell.strip() for cell in row):
                return [cell.strip() for cell in row]
    raise InputFileError(path, "the file is empty (expected a header and at least one row)")


def missing_columns_error(path: Path, names: list[str]) -> InputFileError:
    """The format the header comes closest to names what it misses."""
    log_like = "item_id" in names or "timestamp" in names
    wanted = LOG_COLUMNS if log_like else SEQUENCE_COLUMNS
    missing = [n for n in wanted if n not in names]
    return InputFileError(
        path,
        f"missing required column(s) {missing}; the header has {names} (expected the course "
        f"CSV's columns {list(SEQUENCE_COLUMNS)} or an interaction log's {list(LOG_COLUMNS)} "
        "+ optional title)",
        line=1,
        field=missing[0],
    )


def add_item_titles(parsed: ParsedSequences, path: Path, max_quarantine_fraction: float) -> None:
    """Titles from an ``item_id,title`` file, for the items of ``parsed``, win over the input's
    own. As in the input, an id listed with several titles keeps its most frequent (the first
    seen on a tie), and bad rows are quarantined; ids that are not in the input are counted."""
    items = parsed.histories.items
    strings = is_string_ids(items)
    counts: dict[object, Counter[str]] = {}
    quarantined: list[QuarantinedRow] = []
    rows = 0
    layout = layout_of(path)
    with open_text(path, layout, None) as handle:
        reader = csv.reader(handle)
        header = [cell.strip() for cell in next(reader, [])]
        missing = [c for c in ("item_id", "title") if c not in header]
        if missing:
            raise InputFileError(path, f"missing column(s) {missing}", line=1, field=missing[0])
        column, title_column = header.index("item_id"), header.index("title")
        line = reader.line_num + 1
        for row in reader:
            if row:  # a blank line is no row; ",," is a bad one
                rows += 1
                item = row[column].strip() if len(row) > column else ""
                reason = _items_row_problem(row, len(header), item, strings)
                if reason is not None:
                    quarantined.append(QuarantinedRow(path.name, line, reason[0], reason[1], item))
                else:
                    key = item if strings else int(item)
                    title = html.unescape(row[title_column]).strip()
                    counts.setdefault(key, Counter())[title] += 1
            line = reader.line_num + 1
    if rows and len(quarantined) > max_quarantine_fraction * rows:
        raise _too_many_quarantined(path, quarantined, rows, max_quarantine_fraction)
    titles, conflicts = most_frequent_titles(counts)
    known = set(items.tolist())
    parsed.titles.update({item: title for item, title in titles.items() if item in known})
    parsed.quarantined.extend(quarantined)
    parsed.counts.update(
        {
            "items_file_rows": rows,
            "items_file_quarantined_rows": len(quarantined),
            "items_file_ids_not_in_input": sum(item not in known for item in titles),
            "items_file_title_conflicts": conflicts,
        }
    )


def row_problem(row: list[str], width: int) -> str | None:
    """Why a CSV record is no row of a file whose header has ``width`` fields, or None."""
    if len(row) != width:
        return f"{len(row)} fields where the header has {width}"
    if SURROGATE.search("".join(row)):
        return "bytes that are not valid UTF-8"
    return None


def _items_row_problem(
    row: list[str], width: int, item: str, strings: bool
) -> tuple[str, str] | None:
    """(field, reason) of a bad items-file row, or None."""
    reason = row_problem(row, width)
    if reason is not None:
        return "(row)", reason
    if strings:
        problem = string_id_problem(item)
        return None if problem is None else ("item_id", problem)
    if not CANONICAL_INT.fullmatch(item):
        return "item_id", f"{item[:40]!r} is not an integer id (the input's item ids are)"
    return None


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
                    ("file", pa.string()),
                    ("line", pa.int64()),
                    ("field", pa.string()),
                    ("reason", pa.string()),
                    ("row_id", pa.string()),
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
