"""Parse an interaction log: ``user_id,item_id,timestamp[,title]``, one row per event, CSV or
parquet, into per-user histories in time order (ties by item id): the same sequences the course
CSV would hold for the same purchases.

The file streams in record batches (pyarrow): what stays in memory is three numbers per event (a
user code, an item code, the time) and one entry per distinct user and item, so a 2 GB log is never
loaded whole (``bench/interaction_log.py`` measures it). Timestamps are epoch seconds (integers
or decimals) or ISO 8601. Repairs, counted in ``ParsedSequences.counts``: an event whose
timestamp does not parse, or whose ids are empty, is quarantined with its line; the same (user,
item, timestamp) twice is kept once; a user whose events are out of time order in the file is
sorted.
"""

from __future__ import annotations

import hashlib
import html
import io
from array import array
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.input_formats import (
    LOG_COLUMNS,
    HashingReader,
    InputFileError,
    ParsedSequences,
    QuarantinedRow,
    most_frequent_titles,
    string_id_problem,
    text_ids,
)

BATCH_BYTES = 16 << 20  # CSV bytes per record batch
PARQUET_BATCH_ROWS = 500_000
TITLE = "title"


def _batches(path: Path, columns: list[str], digest: hashlib._Hash) -> Iterator[pd.DataFrame]:
    """The wanted columns as strings, batch by batch (row order kept)."""
    if _is_parquet(path):
        with path.open("rb") as handle:  # the bytes are the version: hash them as they are
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        for batch in pq.ParquetFile(path).iter_batches(PARQUET_BATCH_ROWS, columns=columns):
            yield batch.to_pandas().astype("string").fillna("")
        return
    reader = pacsv.open_csv(
        io.BufferedReader(HashingReader(path.open("rb", buffering=0), digest), 1 << 20),
        read_options=pacsv.ReadOptions(block_size=BATCH_BYTES),
        convert_options=pacsv.ConvertOptions(
            include_columns=columns,
            column_types={name: pa.string() for name in columns},
            strings_can_be_null=False,
        ),
    )
    for batch in reader:
        yield batch.to_pandas()


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"PAR1"


def _timestamps(text: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch; NaN-like (missing) where the text does not parse."""
    numeric = pd.to_numeric(text, errors="coerce")
    nanos = (numeric * 1e9).round()
    dates = text[numeric.isna()]
    if len(dates):
        parsed = pd.to_datetime(dates, errors="coerce", utc=True, format="ISO8601")
        nanos[numeric.isna()] = parsed.astype("int64").where(parsed.notna(), np.nan)
    return nanos.to_numpy(dtype=np.float64)


class _Events:
    """The events read so far, 16 bytes each: two int32 codes and the time."""

    def __init__(self) -> None:
        self.user, self.item, self.time = array("i"), array("i"), array("d")

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The three columns as numpy arrays; this object lets go of them."""
        columns = (
            np.frombuffer(self.user, dtype=np.int32),
            np.frombuffer(self.item, dtype=np.int32),
            np.frombuffer(self.time, dtype=np.float64),
        )
        self.user = self.item = self.time = None
        return columns


class _Codes:
    """Dense codes for the distinct texts of a column, in order of first appearance."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def codes(self, values: pd.Series) -> np.ndarray:
        codes, uniques = pd.factorize(values, sort=False)
        known = np.array([self.index.setdefault(u, len(self.index)) for u in uniques], np.int64)
        return known[codes] if len(codes) else np.empty(0, np.int64)

    def texts(self) -> list[str]:
        return list(self.index)


def parse_interaction_log(path: Path) -> ParsedSequences:
    """Parse the log at ``path``; raise InputFileError when the file as a whole is unusable."""
    path = Path(path)
    digest = hashlib.sha256()
    names = pq.read_schema(path).names if _is_parquet(path) else _csv_header(path)
    columns = [*LOG_COLUMNS, *([TITLE] if TITLE in names else [])]
    users, items = _Codes(), _Codes()
    events = _Events()
    title_counts: dict[int, Counter[str]] = {}
    quarantined: list[QuarantinedRow] = []
    rows_read = 0
    for frame in _batches(path, columns, digest):
        lines = np.arange(len(frame)) + rows_read + 2  # the header is line 1
        rows_read += len(frame)
        user, item = frame["user_id"].str.strip(), frame["item_id"].str.strip()
        when = _timestamps(frame["timestamp"].str.strip())
        good = np.ones(len(frame), dtype=bool)
        for name, values in (("user_id", user), ("item_id", item)):
            suspect = ((values == "") | values.str.contains(r"[\s<>]", regex=True)).to_numpy()
            for row in np.flatnonzero(good & suspect):  # few: build their reasons one by one
                good[row] = False
                problem = string_id_problem(values.iat[row])
                quarantined.append(QuarantinedRow(int(lines[row]), name, problem, user.iat[row]))
        for row in np.flatnonzero(good & np.isnan(when)):
            good[row] = False
            text = frame["timestamp"].iat[row]
            reason = f"a timestamp that is neither epoch seconds nor ISO 8601: {text[:40]!r}"
            quarantined.append(QuarantinedRow(int(lines[row]), "timestamp", reason, user.iat[row]))
        user, item, when = user[good], item[good], when[good]
        events.user.extend(users.codes(user))
        codes = items.codes(item)
        events.item.extend(codes)
        events.time.extend(when)
        if TITLE in frame:
            _count_titles(title_counts, codes, frame[TITLE][good])
    if rows_read == 0:
        raise InputFileError(path, "the file has a header but no data rows", line=2)
    return _assemble(path, users, items, events, title_counts, quarantined, rows_read, digest)


def _csv_header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        return [name.strip() for name in handle.readline().strip().split(",")]


def _count_titles(counts: dict[int, Counter[str]], codes: np.ndarray, titles: pd.Series) -> None:
    pairs = pd.DataFrame({"item": codes, "title": titles.fillna("").to_numpy()})
    pairs = pairs[pairs["title"].str.strip() != ""]
    for (item, title), n in pairs.value_counts(sort=False).items():
        counts.setdefault(int(item), Counter())[html.unescape(title).strip()] += int(n)


def _assemble(
    path: Path,
    users: _Codes,
    items: _Codes,
    events: _Events,
    title_counts: dict[int, Counter[str]],
    quarantined: list[QuarantinedRow],
    rows_read: int,
    digest: hashlib._Hash,
) -> ParsedSequences:
    user, item, when = events.arrays()
    user_ids, item_ids = text_ids(users.texts()), text_ids(items.texts())
    if item_ids.dtype.kind == "i" and len(item_ids) and item_ids.min() <= 0:
        bad = int(np.flatnonzero(item_ids <= 0)[0])
        raise InputFileError(
            path, f"integer item ids must be positive, found {item_ids[bad]}", field="item_id"
        )
    item_rank = np.argsort(np.argsort(item_ids, kind="stable"), kind="stable")  # ties by item id
    # users stay in order of first appearance; each user's events in time order, ties by item id
    order = np.lexsort((item_rank[item], when, user))
    unordered = _out_of_order_users(user, when)
    count = len(when)
    user, item, when = user[order], item[order], when[order]
    del order  # with the file-order arrays (arrays() let go of them): the sorted copies remain
    repeat = np.zeros(len(user), dtype=bool)
    repeat[1:] = (user[1:] == user[:-1]) & (item[1:] == item[:-1]) & (when[1:] == when[:-1])
    del when
    user, item = user[~repeat], item[~repeat]
    lengths = np.bincount(user, minlength=len(user_ids))
    del user
    titles, conflicts = most_frequent_titles(
        {item_ids[code].item(): c for code, c in title_counts.items()}
    )
    titles = {i: titles.get(i, "") for i in item_ids[np.unique(item)].tolist()}
    present = lengths > 0
    return ParsedSequences(
        histories=Histories(
            user_ids=user_ids[present],
            offsets=np.concatenate([[0], np.cumsum(lengths[present])]).astype(np.int64),
            items=item_ids[item],
        ),
        titles=titles,
        rows_read=rows_read,
        sha256=digest.hexdigest(),
        format="log",
        quarantined=quarantined,
        title_conflicts=conflicts,
        counts={
            "events": count,
            "duplicate_events_dropped": int(repeat.sum()),
            "users_out_of_time_order": unordered,
        },
    )


def _out_of_order_users(user: np.ndarray, when: np.ndarray) -> int:
    """Users whose events, in file order, go back in time at least once."""
    by_user = np.argsort(user, kind="stable")  # file order within each user
    u, t = user[by_user], when[by_user]
    back = (u[1:] == u[:-1]) & (t[1:] < t[:-1])
    return int(np.unique(u[1:][back]).size)
