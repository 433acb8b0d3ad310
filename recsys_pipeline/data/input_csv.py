"""Parse and validate the course CSV (``user_id,history_item_id,history_item_title``): one row
per user, list literals. The file is read row by row (a 2 GB file streams; only the parsed ids and
one title per item stay in memory). The id rules and the errors are ``input_formats.py``'s."""

from __future__ import annotations

import ast
import csv
import hashlib
import html
import json
from array import array
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from recsys_pipeline.data.histories import Histories, as_ids
from recsys_pipeline.data.input_errors import InputFileError, QuarantinedRow, RowError
from recsys_pipeline.data.input_formats import (
    SEQUENCE_COLUMNS,
    SURROGATE,
    ParsedSequences,
    most_frequent_titles,
    string_id_problem,
    text_ids,
)
from recsys_pipeline.data.input_streams import Layout, layout_of, open_text

USER_COLUMN = "user_id"
ITEMS_COLUMN = "history_item_id"
TITLES_COLUMN = "history_item_title"
REQUIRED_COLUMNS = SEQUENCE_COLUMNS

# One field may hold a whole user history; csv's default limit (128 KiB) is too small for that.
MAX_FIELD_BYTES = 64 * 1024 * 1024
_MISSING_MARKERS = {"", "nan", "none", "null", "na", "n/a"}


def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in _MISSING_MARKERS


def _parse_user_id(cell: str) -> str:
    """The id as written (its kind is the whole column's, decided at the end)."""
    if _is_missing(cell):
        raise RowError(USER_COLUMN, "empty or NaN cell")
    user = cell.strip()
    if (problem := string_id_problem(user)) is not None:
        raise RowError(USER_COLUMN, problem)
    return user


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


def _parse_items(cell: str) -> list[int] | list[str]:
    """Integer ids (positive) or string ids, one kind per history."""
    items = _literal_list(cell, ITEMS_COLUMN, try_json=True)
    if not items:
        raise RowError(ITEMS_COLUMN, "empty history")
    strings = isinstance(items[0], str)
    for position, item in enumerate(items):
        if strings:
            if not isinstance(item, str):
                raise RowError(ITEMS_COLUMN, f"element {position} is not a string id: {item!r:.40}")
            if (problem := string_id_problem(item)) is not None:
                raise RowError(ITEMS_COLUMN, f"element {position} is {problem}")
        elif isinstance(item, bool) or not isinstance(item, int):
            raise RowError(ITEMS_COLUMN, f"element {position} is not an integer id: {item!r:.40}")
        elif item <= 0:
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


def _rows(path: Path, layout: Layout, digest: hashlib._Hash) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of each record; header first. ``digest`` sees the file's
    bytes as they are read: at the end it is the digest of exactly what was parsed."""
    with open_text(path, layout, digest) as handle:
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


def parse_sequences_csv(path: Path, layout: Layout | None = None) -> ParsedSequences:
    """Parse the course CSV; raise InputFileError when the file as a whole is unusable (the share
    of quarantined rows is checked by ``input_parsing.parse_input``). ``layout`` when the caller
    has sniffed it already."""
    path = Path(path)
    layout = layout or layout_of(path)
    csv.field_size_limit(MAX_FIELD_BYTES)

    digest = hashlib.sha256()
    rows = _rows(path, layout, digest)
    header = _read_header(path, rows)
    col = {name: header.index(name) for name in REQUIRED_COLUMNS}
    ignored = [name for name in header if name not in REQUIRED_COLUMNS]

    user_ids: list[str] = []
    offsets = array("q", [0])
    items: array | list = array("q")  # a list once string ids appear
    first_line_of_kind: dict[bool, int] = {}  # string ids? -> the first line with that kind
    title_counts: dict[object, Counter[str]] = {}
    first_line_of_user: dict[str, int] = {}
    quarantined: list[QuarantinedRow] = []
    rows_read = 0

    for line, row in rows:
        if not row:
            continue  # a blank line, e.g. a trailing newline: ",," is a row (of empty cells)
        rows_read += 1
        raw_user = row[col[USER_COLUMN]][:40] if len(row) > col[USER_COLUMN] else ""
        try:
            if len(row) != len(header):
                raise RowError("(row)", f"{len(row)} fields where the header has {len(header)}")
            for name, index in col.items():
                if SURROGATE.search(row[index]):
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
            quarantined.append(QuarantinedRow(path.name, line, exc.field, exc.reason, raw_user))
            continue
        strings = isinstance(history[0], str)
        first_line_of_kind.setdefault(strings, line)
        if len(first_line_of_kind) > 1:
            raise InputFileError(
                path,
                f"mixes integer item ids (line {first_line_of_kind[False]}) and string item ids "
                f"(line {first_line_of_kind[True]}): use one kind for the whole column",
                line=line,
                field=ITEMS_COLUMN,
            )
        if strings and isinstance(items, array):
            items = list(items)
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
    titles, conflicts = most_frequent_titles(title_counts)
    return ParsedSequences(
        histories=Histories(
            user_ids=text_ids(user_ids) if user_ids else np.empty(0, dtype=np.int64),
            offsets=np.frombuffer(offsets, dtype=np.int64).copy(),
            items=np.frombuffer(items, dtype=np.int64).copy()
            if isinstance(items, array)
            else as_ids(items),
        ),
        titles=titles,
        rows_read=rows_read,
        sha256=digest.hexdigest(),
        format="sequences",
        quarantined=quarantined,
        title_conflicts=conflicts,
        ignored_columns=ignored,
        layout=layout.describe(),
    )
