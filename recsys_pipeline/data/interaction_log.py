"""Parse an interaction log: ``user_id,item_id,timestamp[,title]``, one row per event, CSV or
parquet, into per-user histories in time order (ties by item id): the same sequences the course
CSV would hold for the same purchases.

The file streams in record batches: what stays in memory is three numbers per event (a user code,
an item code, the time) and one entry per distinct user and item, so a 2 GB log is never loaded
whole (``bench/interaction_log.py`` measures it). A regular CSV goes through pyarrow's reader; one
that is not regular (a row with too many or too few fields, a quoted line break, bytes that are
not UTF-8, or UTF-16/32 text) is read again, exactly, with Python's csv module, because pyarrow
can skip a bad row but cannot say on which line it was.

Timestamps are epoch seconds (integers or decimals) or ISO 8601 (a naive time is UTC), mixed
freely in one column, held as integer microseconds since the epoch. Repairs, counted in
``ParsedSequences.counts``: a row with the wrong number of fields, an empty id or a timestamp that
does not parse, is not finite, or lies outside the years 1 to 9999 is quarantined with its line;
the same (user, item, timestamp) twice is kept once; a user whose events are out of time order in
the file is sorted.
"""

from __future__ import annotations

import csv
import datetime
import functools
import hashlib
import html
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.input_errors import InputFileError, QuarantinedRow
from recsys_pipeline.data.input_formats import (
    LOG_COLUMNS,
    ParsedSequences,
    header_of,
    missing_columns_error,
    most_frequent_titles,
    row_problem,
    string_id_problem,
    text_ids,
)
from recsys_pipeline.data.input_streams import Layout, layout_of, open_binary, open_text

BATCH_BYTES = 16 << 20  # CSV bytes per record batch
BATCH_ROWS = 500_000  # rows per batch of parquet, and of the exact CSV reader
TITLE = "title"
MICROS = 1_000_000
# ISO 8601 writes years 1 to 9999; epoch seconds outside them are a unit mistake (milliseconds?)
FIRST_SECOND = -62_135_596_800  # 0001-01-01T00:00:00Z
LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z


@dataclass
class Batch:
    frame: pd.DataFrame  # the wanted columns as strings, rows with the header's field count
    lines: np.ndarray  # the line each row starts on (the header is line 1)
    # rows the reader could not take (another field count, bytes that are not UTF-8)
    ragged: list[QuarantinedRow] = field(default_factory=list)
    rows: int = 0  # data rows read, ragged ones included


class _Irregular(Exception):
    """The fast reader met something only the exact reader can place on its line."""


def _arrow_batches(
    path: Path, layout: Layout, columns: list[str], digest: hashlib._Hash
) -> Iterator[Batch]:
    irregular: list[str] = []

    def skip(row: pacsv.InvalidRow) -> str:
        irregular.append(row.text)
        return "skip"

    with open_binary(path, layout, digest) as binary:
        reader = pacsv.open_csv(
            binary,
            read_options=pacsv.ReadOptions(block_size=BATCH_BYTES),
            # quoted line breaks parse right here; they only put rows off their line numbers
            # a blank line is then a row of one field, irregular: pyarrow would drop it silently
            # and put every later row off its line number
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=skip
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=columns,
                column_types={name: pa.binary() for name in columns},
                strings_can_be_null=False,
            ),
        )
        start = 2
        for batch in reader:  # (an ArrowException, e.g. a header not on line 1, is irregular too)
            if irregular:
                raise _Irregular(f"a row of another field count: {irregular[0][:60]!r}")
            try:  # binary -> string validates UTF-8
                strings = [pc.cast(batch.column(name), pa.string()) for name in columns]
            except pa.ArrowInvalid as exc:
                raise _Irregular(str(exc)) from None
            if any(pc.any(pc.match_substring_regex(c, "[\r\n]")).as_py() for c in strings):
                raise _Irregular("a quoted line break")
            # a blank line parses as a row of empty cells: only the exact reader tells it (not a
            # row) from ",,," (a row of empty ids)
            blank = functools.reduce(pc.and_, [pc.equal(c, "") for c in strings])
            if pc.any(blank).as_py():
                raise _Irregular("a blank line or a row of empty cells")
            frame = pa.table(strings, names=columns).to_pandas()
            yield Batch(frame, np.arange(start, start + len(frame)), rows=len(frame))
            start += len(frame)
        if irregular:  # in the last block
            raise _Irregular(f"a row of another field count: {irregular[0][:60]!r}")


def _exact_batches(
    path: Path, layout: Layout, columns: list[str], digest: hashlib._Hash
) -> Iterator[Batch]:
    """Python's csv reader: slower, but it knows each record's line."""
    with open_text(path, layout, digest) as handle:
        reader = csv.reader(handle)
        header: list[str] | None = None
        rows, lines, ragged, count = [], [], [], 0
        line = 1
        for row in reader:
            if header is None:
                if any(cell.strip() for cell in row):  # the first line with a name, as header_of
                    header = [cell.strip() for cell in row]
                    wanted = [header.index(name) for name in columns]
            elif row:  # a blank line is no row; ",,," is one, of empty ids
                count += 1
                reason = row_problem(row, len(header))
                if reason is not None:
                    user = row[wanted[0]][:40] if len(row) > wanted[0] else ""
                    ragged.append(QuarantinedRow(path.name, line, "(row)", reason, user))
                else:
                    rows.append([row[i] for i in wanted])
                    lines.append(line)
                if count % BATCH_ROWS == 0:
                    yield _exact_batch(rows, lines, ragged, count, columns)
                    rows, lines, ragged, count = [], [], [], 0
            line = reader.line_num + 1
        yield _exact_batch(rows, lines, ragged, count, columns)


def _exact_batch(
    rows: list[list[str]],
    lines: list[int],
    ragged: list[QuarantinedRow],
    count: int,
    columns: list[str],
) -> Batch:
    frame = pd.DataFrame(rows, columns=columns, dtype="string")
    return Batch(frame, np.array(lines, dtype=np.int64), ragged, count)


def _parquet_batches(path: Path, columns: list[str], digest: hashlib._Hash) -> Iterator[Batch]:
    with path.open("rb") as handle:  # the bytes are the version: hash them as they are
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    start = 2  # a parquet file has no lines: rows are numbered as a CSV of it would be
    for batch in pq.ParquetFile(path).iter_batches(BATCH_ROWS, columns=columns):
        frame = batch.to_pandas().astype("string").fillna("")
        yield Batch(frame, np.arange(start, start + len(frame)), rows=len(frame))
        start += len(frame)


def timestamps(text: pd.Series) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """(microseconds since the epoch, [(row, why) for each timestamp that is not valid]); the
    time of an invalid one is 0. Epoch seconds and ISO 8601 may be mixed in one column."""
    numeric = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    iso = np.isnan(numeric)
    seconds = numeric.copy()
    micros = np.zeros(len(text), dtype=np.int64)
    problems: list[tuple[int, str]] = []
    if iso.any():
        dates = text[iso]
        # pandas parses in the unit the batch's own strings need (s, us or ns), so convert to
        # one explicit unit; strings it cannot place (NaT) get Python's parser
        parsed = pd.to_datetime(dates, errors="coerce", utc=True, format="ISO8601")
        as_micros = parsed.dt.as_unit("us").astype("int64").to_numpy(copy=True)
        for position in np.flatnonzero(parsed.isna().to_numpy()):
            as_micros[position] = _iso_micros(dates.iat[position])
        micros[iso] = as_micros
        seconds[iso] = np.where(as_micros == _NOT_ISO, np.nan, 0.0)
    for row in np.flatnonzero(np.isnan(seconds)):
        problems.append((int(row), "neither epoch seconds nor ISO 8601"))
    epoch = ~iso & np.isfinite(numeric)
    for row in np.flatnonzero(~iso & ~np.isfinite(numeric)):
        problems.append((int(row), "not a finite number of seconds"))
    outside = epoch & ((numeric < FIRST_SECOND) | (numeric > LAST_SECOND))
    for row in np.flatnonzero(outside):
        problems.append((int(row), "outside the years 1 to 9999 (the log takes epoch seconds)"))
    inside = epoch & ~outside
    micros[inside] = np.round(numeric[inside] * MICROS).astype(np.int64)
    return micros, sorted(problems)


_NOT_ISO = np.iinfo(np.int64).min
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _iso_micros(text: str) -> int:
    """One ISO 8601 time that pandas could not place (e.g. a year beyond 2262 among
    nanosecond-precision times), as microseconds since the epoch; _NOT_ISO if it is none."""
    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        return _NOT_ISO
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return (when - _EPOCH) // datetime.timedelta(microseconds=1)


class _Events:
    """The events read so far, 16 bytes each: two int32 codes and the time."""

    def __init__(self) -> None:
        self.user, self.item, self.time = array("i"), array("i"), array("q")

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The three columns as numpy arrays; this object lets go of them."""
        columns = (
            np.frombuffer(self.user, dtype=np.int32),
            np.frombuffer(self.item, dtype=np.int32),
            np.frombuffer(self.time, dtype=np.int64),
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


def parse_interaction_log(
    path: Path, layout: Layout | None = None, names: list[str] | None = None
) -> ParsedSequences:
    """Parse the log at ``path``; raise InputFileError when the file as a whole is unusable.
    ``layout`` and ``names`` (its header) when the caller has read them already."""
    path = Path(path)
    layout = layout or layout_of(path)
    names = header_of(path, layout) if names is None else names
    if not all(name in names for name in LOG_COLUMNS):
        raise missing_columns_error(path, names)
    columns = [*LOG_COLUMNS, *([TITLE] if TITLE in names else [])]
    if layout.parquet:
        digest = hashlib.sha256()
        return _parse(path, layout, _parquet_batches(path, columns, digest), digest)
    if layout.utf8:
        digest = hashlib.sha256()
        try:
            return _parse(path, layout, _arrow_batches(path, layout, columns, digest), digest)
        except (_Irregular, pa.ArrowException):
            pass  # read again below, exactly, with a fresh digest
    digest = hashlib.sha256()
    return _parse(path, layout, _exact_batches(path, layout, columns, digest), digest)


def _parse(
    path: Path, layout: Layout, batches: Iterator[Batch], digest: hashlib._Hash
) -> ParsedSequences:
    """Events from ``batches`` (whose reader feeds ``digest``) grouped into histories."""
    users, items = _Codes(), _Codes()
    events = _Events()
    title_counts: dict[int, Counter[str]] = {}
    quarantined: list[QuarantinedRow] = []
    rows_read = 0
    for batch in batches:
        frame = batch.frame
        rows_read += batch.rows
        quarantined.extend(batch.ragged)
        user, item = frame["user_id"].str.strip(), frame["item_id"].str.strip()
        when, good = _valid_events(path, batch, user, item, quarantined)
        user, item, when = user[good], item[good], when[good]
        events.user.extend(users.codes(user))
        codes = items.codes(item)
        events.item.extend(codes)
        events.time.extend(when)
        if TITLE in frame:
            _count_titles(title_counts, codes, frame[TITLE][good])
    if rows_read == 0:
        raise InputFileError(path, "the file has a header but no data rows", line=2)
    return _assemble(
        path, users, items, events, title_counts, quarantined, rows_read, digest, layout
    )


def _valid_events(
    path: Path,
    batch: Batch,
    user: pd.Series,
    item: pd.Series,
    quarantined: list[QuarantinedRow],
) -> tuple[np.ndarray, np.ndarray]:
    """(each row's time, which rows are valid events); the others are quarantined."""
    when, bad_times = timestamps(batch.frame["timestamp"].str.strip())
    good = np.ones(len(batch.frame), dtype=bool)

    def reject(row: int, name: str, reason: str) -> None:
        good[row] = False
        line = int(batch.lines[row])
        quarantined.append(QuarantinedRow(path.name, line, name, reason, user.iat[row][:40]))

    for name, values in (("user_id", user), ("item_id", item)):
        suspect = (values == "") | values.str.contains(r"[\s<>]", regex=True)
        for row in np.flatnonzero(good & suspect.to_numpy()):  # few: reasons one by one
            reject(row, name, string_id_problem(values.iat[row]))
    for row, why in bad_times:
        if good[row]:
            text = batch.frame["timestamp"].iat[row]
            reject(row, "timestamp", f"a timestamp that is {why}: {text[:40]!r}")
    return when, good


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
    layout: Layout,
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
    listed = item_ids.tolist()
    titles, conflicts = most_frequent_titles({listed[code]: c for code, c in title_counts.items()})
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
        layout=layout.describe(),
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
