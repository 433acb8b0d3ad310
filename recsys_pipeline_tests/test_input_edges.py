"""Inputs real users and careless tools produce: mixed timestamp kinds, ragged rows, compressed
and UTF-16 files, conflicting catalogs, very long ids. Nothing is reordered, coerced or dropped
without a count; a bad file is one error naming the cause."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import pathlib
import zipfile

import pytest

from recsys_pipeline.data.input_formats import InputFileError
from recsys_pipeline.data.input_parsing import parse_input
from recsys_pipeline.data.interaction_log import parse_interaction_log
from recsys_pipeline_tests.conftest import peak_memory, tiny_rows, write_rows
from recsys_pipeline_tests.test_interaction_log import LOG, as_log, by_user, write_log

LOG_TEXT = "user_id,item_id,timestamp,title\n" + "".join(
    f"u{u},I{i},{1_300_000_000 + 86_400 * i},Game {i}\n" for u in range(20) for i in range(1, 6)
)


def test_mixed_iso_and_epoch_timestamps_keep_their_true_order(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "user_id,item_id,timestamp\n"
        "u1,A,1357120800\n"  # 2013-01-02 10:00 UTC
        "u1,B,2014-01-01T00:00:00Z\n"
        "u1,C,1388620800\n"  # 2014-01-02 00:00 UTC
        "u1,D,2014-01-01T00:00:00.000001+00:00\n"  # a microsecond after B
        "u1,E,2013-01-02T11:00:00+01:00\n"  # the same instant as A: ties by item id
        "u1,F,3000-01-01\n"  # beyond pandas' nanosecond range, still a time
    )
    parsed = parse_input(path)
    assert by_user(parsed.histories) == {"u1": ["A", "E", "B", "D", "C", "F"]}
    assert parsed.quarantined == []


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("inf", "not a finite number"),
        ("-inf", "not a finite number"),
        ("1e999", "not a finite number"),
        ("1357120800000", "outside the years 1 to 9999"),  # milliseconds, not seconds
        ("-1e12", "outside the years 1 to 9999"),
        ("NaN", "neither epoch seconds nor ISO 8601"),
        ("2014-13-01", "neither epoch seconds nor ISO 8601"),
    ],
)
def test_timestamps_that_are_no_time_are_quarantined(tmp_path, text, why):
    path = tmp_path / "log.csv"
    path.write_text(LOG_TEXT + f"u0,I9,{text},x\n")
    parsed = parse_input(path)
    (row,) = parsed.quarantined
    assert (row.file, row.line, row.field) == ("log.csv", 102, "timestamp")
    assert why in row.reason and repr(text) in row.reason
    assert "I9" not in parsed.histories.items.tolist()


def test_a_ragged_row_is_quarantined_with_its_line_and_later_lines_stay_right(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(
        "user_id,item_id,timestamp,title\n"
        "u1,A,1,Halo\n"
        'u1,B,2,"A title\nover two lines"\n'  # lines 3-4
        "u1,C,3,Fire Emblem, Sacred Stones\n"  # line 5: an unquoted comma, 5 fields
        "u1,D,4\n"  # line 6: 3 fields
        "\n"  # line 7: blank
        "u1,E,not a time,Metroid\n"  # line 8
        "u1,F,6,Zelda\n"
    )
    parsed = parse_input(path, max_quarantine_fraction=0.5)
    assert [(q.line, q.field) for q in parsed.quarantined] == [
        (5, "(row)"),
        (6, "(row)"),
        (8, "timestamp"),
    ]
    assert "5 fields where the header has 4" in parsed.quarantined[0].reason
    assert by_user(parsed.histories) == {"u1": ["A", "B", "F"]}
    assert parsed.titles["B"] == "A title\nover two lines"
    assert parsed.rows_read == 6


def test_non_utf8_bytes_in_a_log_quarantine_their_row(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(LOG_TEXT.encode() + b"u0,I9,5,Pok\xe9mon\n")
    parsed = parse_input(path)
    (row,) = parsed.quarantined
    assert (row.line, row.reason) == (102, "bytes that are not valid UTF-8")
    assert len(parsed.histories) == 20


@pytest.mark.parametrize("fmt", ["course", "log"])
@pytest.mark.parametrize(
    "pack",
    [
        lambda data: data.decode().encode("utf-16"),  # with a byte-order mark, as Excel saves
        lambda data: data.decode().encode("utf-32"),
        lambda data: gzip.compress(data),
        lambda data: bz2.compress(data),
        lambda data: lzma.compress(data),
        lambda data: gzip.compress(data.decode().encode("utf-16")),
    ],
    ids=["utf-16", "utf-32", "gzip", "bzip2", "xz", "gzip+utf-16"],
)
def test_compressed_and_utf16_files_parse_like_the_plain_file(tmp_path, fmt, pack):
    plain = tmp_path / "plain.csv"
    if fmt == "course":
        write_rows(plain, tiny_rows())
    else:
        write_log(plain, as_log(tiny_rows()))
    packed = tmp_path / "packed.csv.gz"
    packed.write_bytes(pack(plain.read_bytes()))
    expected, got = parse_input(plain), parse_input(packed)
    assert by_user(got.histories) == by_user(expected.histories)
    assert got.titles == expected.titles and got.quarantined == []
    assert got.format == expected.format
    # the data version is the digest of the file's own bytes, compressed as they are
    assert got.sha256 == hashlib.sha256(packed.read_bytes()).hexdigest()


def test_files_that_are_not_readable_text_name_their_cause(tmp_path):
    data = write_rows(tmp_path / "plain.csv", tiny_rows()).read_bytes()
    archive = tmp_path / "in.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("in.csv", data)
    with pytest.raises(InputFileError, match=r"in\.zip: the file is a zip archive"):
        parse_input(archive)
    no_bom = tmp_path / "utf16.csv"
    no_bom.write_bytes(data.decode().encode("utf-16-le"))
    with pytest.raises(InputFileError, match=r"utf16\.csv: .*NUL bytes.*UTF-16"):
        parse_input(no_bom)
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress(data * 50)[:-2000])
    with pytest.raises(InputFileError, match=r"cut\.csv\.gz: the gzip data is corrupt"):
        parse_input(truncated)
    odd = tmp_path / "odd.csv"  # UTF-16 with a byte-order mark, cut mid-character
    odd.write_bytes(data.decode().encode("utf-16")[:-1])
    with pytest.raises(InputFileError, match=r"odd\.csv: the file is not valid utf-16"):
        parse_input(odd)


def test_an_items_file_keeps_the_most_frequent_title_and_counts_what_it_drops(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\nu1,5,1\nu1,6,2\nu2,5,3\n")
    items = tmp_path / "items.csv"
    items.write_text(
        "item_id,title\n"
        "5,Halo 3\n"
        "5,Halo 3 &amp; more\n"  # conflicts with the two others
        "5,Halo 3\n"
        "6,Portal\n"
        "6,Portal 2\n"  # a tie: the first seen wins
        "99,Not bought\n"
        "7,Oops,extra\n"  # line 8: ragged
        "B01,Not an integer id\n"  # line 9
    )
    with items.open("a") as handle:
        handle.writelines(f"{100 + i},Filler {i}\n" for i in range(20))
    parsed = parse_input(log, items_file=items)
    assert parsed.titles == {5: "Halo 3", 6: "Portal"}
    assert parsed.counts["items_file_title_conflicts"] == 2
    assert parsed.counts["items_file_ids_not_in_input"] == 21
    assert parsed.counts["items_file_quarantined_rows"] == 2
    assert [(q.file, q.line, q.field) for q in parsed.quarantined] == [
        ("items.csv", 8, "(row)"),
        ("items.csv", 9, "item_id"),
    ]


def test_an_items_file_with_most_frequent_wins_over_its_last_title(tmp_path):
    """The most frequent title, not the last one listed."""
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\nu1,A1,1\n")
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\nA1,Right\nA1,Right\nA1,Wrong\n")
    parsed = parse_input(log, items_file=items)
    assert parsed.titles == {"A1": "Right"} and parsed.counts["items_file_title_conflicts"] == 1


def test_one_very_long_id_does_not_make_every_event_cost_its_length(tmp_path):
    """Variable-width strings: memory grows with the ids' own lengths, not the longest."""
    events = 50_000
    rows = [[f"U{e % 5000}", f"B{e % 3000:09d}", 1_300_000_000 + e, ""] for e in range(events)]
    rows.append(["U1", "x" * 10_000, 1_400_000_000, ""])  # one 10 kB id
    path = write_log(tmp_path / "log.csv", rows, header=LOG)
    parsed, peak = peak_memory(lambda: parse_interaction_log(path))
    assert parsed.counts["events"] == events + 1
    # fixed-width unicode made every one of the 50,001 events cost 40 kB: 2 GB
    assert peak < 40e6, f"peak {peak / 1e6:.0f} MB"
    assert parsed.histories.items.tolist().count("x" * 10_000) == 1


def test_blank_lines_are_no_rows_wherever_they_are(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("\n\nuser_id,item_id,timestamp\nu1,A,1\n\nu1,B,2\n\n\n")
    parsed = parse_input(path)
    assert by_user(parsed.histories) == {"u1": ["A", "B"]}
    assert parsed.quarantined == [] and parsed.rows_read == 2
    empty = tmp_path / "empty.csv"
    empty.write_text("user_id,item_id,timestamp\n\n\n")
    with pytest.raises(InputFileError, match="no data rows"):
        parse_input(empty)
    cells = tmp_path / "cells.csv"  # a row of empty cells is a row, and a bad one
    cells.write_text(LOG_TEXT + ",,,\n")
    (row,) = parse_input(cells).quarantined
    assert (row.line, row.field, row.reason) == (102, "user_id", "an empty id")
    course = write_rows(tmp_path / "course.csv", tiny_rows())
    course.write_text(course.read_text() + "\n,,\n")  # a blank line, then empty cells
    (row,) = parse_input(course).quarantined
    assert (row.line, row.field) == (len(tiny_rows()) + 3, "user_id")


def test_parquet_timestamps_of_a_time_type_keep_their_order(tmp_path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    when = pd.to_datetime(["2014-01-02 00:30", "2014-01-01 23:30", "2014-01-01 23:45"])
    table = pa.table(
        {
            "user_id": ["a", "a", "a"],
            "item_id": [1, 2, 3],
            "timestamp": pa.array(when.tz_localize("Europe/Berlin")),  # 23:30 UTC is first
        }
    )
    pq.write_table(table, tmp_path / "log.parquet")
    parsed = parse_input(tmp_path / "log.parquet")
    assert by_user(parsed.histories) == {"a": [2, 3, 1]} and parsed.quarantined == []


@pytest.mark.parametrize("fmt", ["course", "log"])
def test_a_regular_file_is_opened_three_times_sniff_header_parse(tmp_path, monkeypatch, fmt):
    """parse_input hands the layout and header it read to the parser, which reads neither again."""
    path = tmp_path / "in.csv.gz"
    plain = write_rows(tmp_path / "plain.csv", tiny_rows())
    if fmt == "log":
        write_log(plain, as_log(tiny_rows()))
    path.write_bytes(gzip.compress(plain.read_bytes()))
    opened, real_open = [], pathlib.Path.open

    def counting_open(self, *args, **kwargs):
        if self == path:
            opened.append(args)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", counting_open)
    assert len(parse_input(path).histories) == len(tiny_rows())
    assert len(opened) == 3
