"""The interaction-log input format: one row per event, grouped into per-user histories."""

from __future__ import annotations

import ast
import csv
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys_pipeline.data.histories import is_string_ids
from recsys_pipeline.data.input_csv import parse_sequences_csv
from recsys_pipeline.data.input_formats import InputFileError
from recsys_pipeline.data.input_parsing import parse_input
from recsys_pipeline.data.interaction_log import parse_interaction_log
from recsys_pipeline_tests.conftest import tiny_rows, write_rows

LOG = ["user_id", "item_id", "timestamp", "title"]


def write_log(path, rows, header=LOG):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def as_log(sequence_rows, shuffle: bool = True) -> list[list[object]]:
    """The course CSV's rows as events, one a day, in a shuffled file order."""
    events = []
    for user, items, titles in sequence_rows:
        for position, (item, title) in enumerate(
            zip(ast.literal_eval(items), ast.literal_eval(titles), strict=True)
        ):
            events.append([user, item, 1_300_000_000 + 86_400 * position, title])
    if shuffle:
        random.Random(0).shuffle(events)
    return events


def by_user(histories) -> dict:
    return {u: histories[r].tolist() for r, u in enumerate(histories.user_ids.tolist())}


def test_a_log_gives_the_sequences_the_course_csv_gives(tmp_path):
    rows = tiny_rows()
    course = parse_sequences_csv(write_rows(tmp_path / "in.csv", rows))
    log = parse_input(write_log(tmp_path / "log.csv", as_log(rows)))
    assert log.format == "log" and by_user(log.histories) == by_user(course.histories)
    assert log.titles == course.titles
    assert log.histories.items.dtype == course.histories.items.dtype == np.int64
    assert log.counts["users_out_of_time_order"] > 0  # shuffled: sorted back


def test_the_shared_data_both_ways(tmp_path, shared_sequences):
    course = parse_sequences_csv(shared_sequences)
    with shared_sequences.open(newline="") as handle:
        rows = [list(r.values()) for r in csv.DictReader(handle)]
    log = parse_input(write_log(tmp_path / "log.csv", as_log(rows)))
    assert by_user(log.histories) == by_user(course.histories)
    assert len(log.histories) == 50_546 and log.counts["events"] == 440_264


def test_string_ids_iso_timestamps_and_ties_by_item_id(tmp_path):
    rows = [
        ["A3V6Z4RCDGRC44", "B00004TFHE", "2013-01-02T10:00:00Z", "Zelda"],
        ["A3V6Z4RCDGRC44", "B00000K2VK", "2013-01-01T10:00:00+00:00", "Mario"],
        ["A1B2", "B0000ZZZZZ", "1357034400", "Metroid"],  # epoch seconds beside ISO 8601
        ["A1B2", "B00000K2VK", "1357034400.0", "Mario"],  # the same time: ties by item id
    ]
    parsed = parse_input(write_log(tmp_path / "log.csv", rows))
    assert by_user(parsed.histories) == {
        "A3V6Z4RCDGRC44": ["B00000K2VK", "B00004TFHE"],
        "A1B2": ["B00000K2VK", "B0000ZZZZZ"],
    }
    assert is_string_ids(parsed.histories.user_ids) and is_string_ids(parsed.histories.items)
    assert parsed.titles["B0000ZZZZZ"] == "Metroid"


def test_bad_events_are_quarantined_with_their_line_and_repairs_counted(tmp_path):
    rows = [
        ["u1", "10", "100", "a"],
        ["u1", "11", "not a time", "b"],  # line 3
        ["u1", "12", "300", "c"],
        ["u1", "12", "300", "c"],  # the same event twice: kept once
        ["", "13", "400", "d"],  # line 6: no user
        ["u2", "  ", "400", "e"],  # line 7: no item
        ["u2", "14", "500", "f"],
        ["u2", "15", "450", "g"],  # out of order in the file: sorted
    ]
    parsed = parse_interaction_log(write_log(tmp_path / "log.csv", rows))
    assert [(q.line, q.field) for q in parsed.quarantined] == [
        (6, "user_id"),
        (7, "item_id"),
        (3, "timestamp"),
    ]
    assert "neither epoch seconds nor ISO 8601: 'not a time'" in parsed.quarantined[2].reason
    assert by_user(parsed.histories) == {"u1": [10, 12], "u2": [15, 14]}
    assert parsed.counts == {
        "events": 5,
        "duplicate_events_dropped": 1,
        "users_out_of_time_order": 1,
    }


def test_an_item_column_with_one_string_id_is_all_strings(tmp_path):
    rows = [["1", "10", "1", ""], ["1", "B01", "2", ""], ["2", "007", "1", ""]]
    parsed = parse_input(write_log(tmp_path / "log.csv", rows))
    assert parsed.histories.items.tolist() == ["10", "B01", "007"]  # exactly as written
    assert parsed.histories.user_ids.tolist() == [1, 2]  # every user id is an integer


def test_parquet_logs_and_titles_from_an_items_file(tmp_path):
    table = pa.table(
        {
            "user_id": pa.array(["a", "a", "b"]),
            "item_id": pa.array([5, 6, 5]),
            "timestamp": pa.array([2, 1, 3]),
        }
    )
    pq.write_table(table, tmp_path / "log.parquet")
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\n5,Halo 3\n6,Portal\n99,Not bought\n")
    parsed = parse_input(tmp_path / "log.parquet", items_file=items)
    assert by_user(parsed.histories) == {"a": [6, 5], "b": [5]}
    assert parsed.titles == {5: "Halo 3", 6: "Portal"}
    bad = tmp_path / "bad_items.csv"
    bad.write_text("item_id,title\nB01,x\n")
    with pytest.raises(InputFileError, match="bad_items.csv, line 2, field 'item_id'"):
        parse_input(tmp_path / "log.parquet", items_file=bad)


def test_a_log_with_no_events_or_too_many_bad_ones_is_an_error(tmp_path):
    with pytest.raises(InputFileError, match="no data rows"):
        parse_input(write_log(tmp_path / "empty.csv", []))
    rows = [["u", "1", "soon", ""]] * 5 + [["u", "1", "1", ""]]
    with pytest.raises(InputFileError, match="5 of 6 rows are invalid"):
        parse_input(write_log(tmp_path / "bad.csv", rows))
