from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys_pipeline.data.histories import is_string_ids
from recsys_pipeline.data.input_csv import parse_sequences_csv
from recsys_pipeline.data.input_formats import (
    InputFileError,
    read_catalog,
    read_histories,
    write_parsed,
)
from recsys_pipeline.data.input_parsing import parse_input
from recsys_pipeline_tests.conftest import HEADER, peak_memory, tiny_rows, write_rows

GOOD = tiny_rows(n_users=40)


def parse_with(tmp_path: Path, bad_rows: list[list[object]], **kwargs) -> object:
    path = write_rows(tmp_path / "in.csv", GOOD + bad_rows)
    return parse_input(path, **kwargs)


def only_quarantined(parsed) -> tuple[str, str]:
    assert len(parsed.quarantined) == 1, parsed.quarantined
    row = parsed.quarantined[0]
    return row.field, row.reason


def test_parses_good_rows_into_histories(tmp_path):
    rows = [
        [7, "[3, 1, 2]", "['C', 'A &amp; B', 'B']"],
        [8, "[2, 4]", "['B', 'D']"],
    ]
    parsed = parse_sequences_csv(write_rows(tmp_path / "in.csv", rows))
    h = parsed.histories
    assert h.user_ids.tolist() == [7, 8]
    assert h[0].tolist() == [3, 1, 2] and h[1].tolist() == [2, 4]
    assert parsed.titles == {3: "C", 1: "A & B", 2: "B", 4: "D"}  # entities unescaped
    assert parsed.quarantined == [] and parsed.rows_read == 2

    write_parsed(parsed, tmp_path)
    back = read_histories(tmp_path)
    assert np.array_equal(back.items, h.items) and np.array_equal(back.offsets, h.offsets)
    ids, titles = read_catalog(tmp_path)
    assert ids.tolist() == [1, 2, 3, 4] and titles == ["A & B", "B", "C", "D"]


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(InputFileError, match=r"nope\.csv: file not found"):
        parse_sequences_csv(tmp_path / "nope.csv")


@pytest.mark.parametrize("content", ["", "\n\n", "\ufeff"])
def test_empty_file_is_an_error(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputFileError, match="empty"):
        parse_sequences_csv(path)


def test_header_without_rows_is_an_error(tmp_path):
    with pytest.raises(InputFileError, match="line 2.*no data rows"):
        parse_sequences_csv(write_rows(tmp_path / "in.csv", []))


def test_missing_required_column_names_line_and_field(tmp_path):
    path = write_rows(tmp_path / "in.csv", [[1, "[1]"]], header=["user_id", "history_item_id"])
    with pytest.raises(InputFileError) as error:
        parse_sequences_csv(path)
    message = str(error.value)
    assert "in.csv, line 1, field 'history_item_title'" in message
    assert "missing required column" in message


def test_extra_columns_are_ignored(tmp_path):
    rows = [[1, "x", "[1, 2]", "['a', 'b']"]]
    path = write_rows(tmp_path / "in.csv", rows, header=["user_id", "note", *HEADER[1:]])
    parsed = parse_sequences_csv(path)
    assert parsed.histories[0].tolist() == [1, 2] and parsed.ignored_columns == ["note"]


def test_bom_and_crlf(tmp_path):
    path = tmp_path / "in.csv"
    text = "user_id,history_item_id,history_item_title\r\n1,\"[1, 2]\",\"['a', 'b']\"\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    parsed = parse_sequences_csv(path)
    assert parsed.histories[0].tolist() == [1, 2] and parsed.titles == {1: "a", 2: "b"}


def test_code_in_a_list_column_is_quarantined_and_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    payload = f"__import__('os').system('touch {marker}')"
    parsed = parse_with(tmp_path, [[999, payload, "['a']"]])
    field, reason = only_quarantined(parsed)
    assert field == "history_item_id" and "not a Python list literal" in reason
    assert not marker.exists()


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("5", "not a list but int"),
        ("[1, 'x']", "element 1 is not an integer id"),
        ("['x', 1]", "element 1 is not a string id"),
        ("['B01', 'B 02']", "element 1 is an id with whitespace"),
        ("['B01', '']", "element 1 is an empty id"),
        ("['<pad>']", "element 0 is an id with whitespace, '<' or '>'"),
        ("[1, 2.5]", "element 1 is not an integer id"),
        ("[1, True]", "element 1 is not an integer id"),
        ("[0, 1]", "element 0 is not a positive id"),
        ("[3, -4]", "element 1 is not a positive id"),
        ("[]", "empty history"),
        ("", "empty or NaN cell"),
        ("NaN", "empty or NaN cell"),
    ],
)
def test_bad_item_lists_are_quarantined(tmp_path, cell, reason):
    parsed = parse_with(tmp_path, [[999, cell, "['a', 'b']"]])
    field, why = only_quarantined(parsed)
    assert field == "history_item_id" and reason in why
    assert 999 not in parsed.histories.user_ids


def test_ids_and_titles_of_different_lengths(tmp_path):
    parsed = parse_with(tmp_path, [[999, "[1, 2, 3]", "['a', 'b']"]])
    assert only_quarantined(parsed) == ("history_item_title", "2 titles for 3 item ids")


@pytest.mark.parametrize(("cell", "reason"), [("", "empty or NaN"), ("A 1", "with whitespace")])
def test_bad_user_ids(tmp_path, cell, reason):
    parsed = parse_with(tmp_path, [[cell, "[1]", "['a']"]])
    field, why = only_quarantined(parsed)
    assert field == "user_id" and reason in why


def test_one_string_user_id_makes_the_column_strings_exactly_as_written(tmp_path):
    """The documented coercion for text columns: integers only when every id is one."""
    parsed = parse_with(tmp_path, [["A3V6Z4RCDGRC44", "[1]", "['a']"], ["007", "[2]", "['b']"]])
    users = parsed.histories.user_ids
    assert is_string_ids(users) and parsed.quarantined == []
    assert users[:3].tolist() == ["0", "1", "2"] and users[-2:].tolist() == [
        "A3V6Z4RCDGRC44",
        "007",
    ]


def test_string_item_ids_keep_their_kind_everywhere(tmp_path):
    rows = [
        ["A3V6Z4RCDGRC44", "['B00004TFHE', 'B00000K2VK']", "['Zelda', 'Mario']"],
        ["A1B2", "['B00000K2VK']", "['Mario']"],
    ]
    parsed = parse_sequences_csv(write_rows(tmp_path / "in.csv", rows))
    assert parsed.histories.items.tolist() == ["B00004TFHE", "B00000K2VK", "B00000K2VK"]
    assert parsed.titles == {"B00004TFHE": "Zelda", "B00000K2VK": "Mario"}
    write_parsed(parsed, tmp_path)
    back = read_histories(tmp_path)
    assert back.user_ids.tolist() == ["A3V6Z4RCDGRC44", "A1B2"]
    assert back.items.tolist() == parsed.histories.items.tolist()
    assert read_catalog(tmp_path)[0].tolist() == ["B00000K2VK", "B00004TFHE"]  # sorted


def test_integer_and_string_item_ids_in_one_column_is_an_error_naming_both_rows(tmp_path):
    rows = [[1, "[1, 2]", "['a', 'b']"], [2, "[3]", "['c']"], [3, "['B01']", "['d']"]]
    with pytest.raises(InputFileError) as error:
        parse_sequences_csv(write_rows(tmp_path / "in.csv", rows))
    message = str(error.value)
    assert "field 'history_item_id'" in message
    assert "integer item ids (line 2) and string item ids (line 4)" in message


def test_nan_title_cell(tmp_path):
    parsed = parse_with(tmp_path, [[999, "[1]", "nan"]])
    assert only_quarantined(parsed) == ("history_item_title", "empty or NaN cell")


def test_duplicate_user_rows_keep_the_first(tmp_path):
    parsed = parse_with(tmp_path, [[0, "[5, 6]", "['a', 'b']"]])
    field, reason = only_quarantined(parsed)
    assert field == "user_id" and "duplicate user_id 0 (first at line 2)" in reason
    assert parsed.histories[0].tolist() != [5, 6]


def test_same_id_with_different_titles_keeps_the_most_frequent(tmp_path):
    rows = [
        [1, "[1, 2]", "['Zelda', 'Mario']"],
        [2, "[1]", "['Zelda (renamed)']"],
        [3, "[1, 2]", "['Zelda', 'Mario']"],
        [4, "[2]", "['Mario']"],
    ]
    parsed = parse_sequences_csv(write_rows(tmp_path / "in.csv", rows))
    assert parsed.titles[1] == "Zelda" and parsed.title_conflicts == 1


def test_distinct_ids_sharing_a_title_stay_distinct(tmp_path):
    rows = [[1, "[1, 2]", "['Same', 'Same']"]]
    parsed = parse_sequences_csv(write_rows(tmp_path / "in.csv", rows))
    assert parsed.titles == {1: "Same", 2: "Same"}


def test_non_utf8_bytes_quarantine_their_row(tmp_path):
    path = write_rows(tmp_path / "in.csv", GOOD)
    with path.open("ab") as handle:
        handle.write(b'999,"[1]","[\'Pok\xe9mon\']"\n')
    parsed = parse_sequences_csv(path)
    assert only_quarantined(parsed) == ("history_item_title", "bytes that are not valid UTF-8")
    assert len(parsed.histories) == len(GOOD)


def test_wrong_number_of_fields(tmp_path):
    parsed = parse_with(tmp_path, [[999, "[1]"]])
    assert only_quarantined(parsed) == ("(row)", "2 fields where the header has 3")


def test_too_many_bad_rows_is_an_error_that_lists_them(tmp_path):
    bad = [[1000 + i, "oops", "['a']"] for i in range(10)]
    with pytest.raises(InputFileError) as error:
        parse_with(tmp_path, bad, max_quarantine_fraction=0.1)
    message = str(error.value)
    assert "in.csv, line 42, field 'history_item_id'" in message
    assert "10 of 50 rows are invalid" in message


def test_a_large_file_streams(tmp_path):
    """Memory stays far below the file size: rows are parsed one at a time."""
    path = tmp_path / "big.csv"
    long_title = "A very long product title that repeats " * 40
    rows = [
        [user, str([1 + user % 50, 51 + user % 50]), str([long_title, long_title])]
        for user in range(20_000)
    ]
    write_rows(path, rows)
    size = path.stat().st_size
    assert size > 60e6
    parsed, peak = peak_memory(lambda: parse_sequences_csv(path))
    assert len(parsed.histories) == 20_000
    assert peak < size / 10, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"


def test_a_header_of_neither_format_names_both(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("user,items\n1,2\n")
    with pytest.raises(InputFileError, match="missing required .* course CSV's columns .* log's"):
        parse_input(path)
