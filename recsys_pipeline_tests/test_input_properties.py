"""Property-based tests of the two input parsers (hypothesis): on generated files the parsed
histories equal a plain reference implementation written here, row by row with Python's csv
module, or the row is counted as quarantined on its line."""

from __future__ import annotations

import ast
import csv
import datetime
import html
import io
import re
from collections import Counter
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys_pipeline.data.input_formats import InputFileError
from recsys_pipeline.data.input_parsing import parse_input
from recsys_pipeline_tests.test_interaction_log import by_user

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]*)")
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

# ids: any printable text, commas, quotes, '<', spaces and non-ASCII included (most are valid;
# an id with inner whitespace or '<' '>' must be quarantined), plus integer-looking ones
printable = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
ids = st.one_of(
    st.text(printable, min_size=1, max_size=6),
    st.integers(1, 30).map(str),
    st.sampled_from(["007", "B00004TFHE", "a,b", 'say "hi"', "<x>", " pad ", "", "   "]),
)
moments = st.datetimes(
    min_value=datetime.datetime(1990, 1, 1),
    max_value=datetime.datetime(2100, 1, 1),
    timezones=st.just(datetime.UTC),
)


@st.composite
def timestamp_texts(draw: st.DrawFn) -> str:
    """One moment written in any accepted kind, or now and then a text that is no time."""
    when = draw(moments)
    seconds = Decimal((when - EPOCH) // datetime.timedelta(microseconds=1)) / 10**6
    kind = draw(st.integers(0, 8))
    if kind == 0:
        return str(int(seconds))
    if kind == 1:
        return f"{seconds:f}"  # decimal seconds, to the microsecond
    if kind == 2:
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == 3:
        offset = datetime.timezone(datetime.timedelta(hours=draw(st.integers(-12, 14))))
        return when.astimezone(offset).isoformat()
    if kind == 4:
        return when.replace(tzinfo=None).isoformat()  # naive: UTC
    if kind == 5:
        return when.strftime("%Y-%m-%d")
    if kind == 6:
        return when.isoformat(timespec="microseconds")
    return draw(st.sampled_from(["", "soon", "inf", "-inf", "1e999", "NaN", "99999999999999"]))


def reference_micros(text: str) -> int | None:
    """What a timestamp means, by the documented rules: epoch seconds or ISO 8601."""
    text = text.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        micros = int((Decimal(text) * 10**6).to_integral_value())
        seconds = micros / 10**6
        return micros if -62_135_596_800 <= seconds <= 253_402_300_799 else None
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return (when - EPOCH) // datetime.timedelta(microseconds=1)


def valid_id(text: str) -> bool:
    return bool(text) and not re.search(r"[\s<>]", text)


def as_kind(values: list[str]) -> list[object]:
    """The documented coercion: integers when every id of the column is one."""
    if values and all(CANONICAL_INT.fullmatch(v) for v in values):
        return [int(v) for v in values]
    return values


def reference_log(text: str) -> tuple[dict, set[int]]:
    """({user: items in time order}, quarantined lines), row by row."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    events, bad, line = [], set(), reader.line_num + 1
    for row in reader:
        if row:  # a blank line is no row
            if len(row) != len(header):
                bad.add(line)
            else:
                user, item, when = row[0].strip(), row[1].strip(), reference_micros(row[2])
                if valid_id(user) and valid_id(item) and when is not None:
                    events.append((user, item, when))
                else:
                    bad.add(line)
        line = reader.line_num + 1
    users = list(dict.fromkeys(e[0] for e in events))  # in order of first appearance
    user_kind = dict(zip(users, as_kind(users), strict=True))
    first_seen = {user: position for position, user in enumerate(users)}
    distinct_items = list(dict.fromkeys(e[1] for e in events))
    item_kind = dict(zip(distinct_items, as_kind(distinct_items), strict=True))
    histories: dict = {}
    # each user's events in time order, ties by item id; the same event twice kept once
    for user, item, _ in sorted(
        set(events), key=lambda e: (first_seen[e[0]], e[2], item_kind[e[1]])
    ):
        histories.setdefault(user_kind[user], []).append(item_kind[item])
    return histories, bad


@st.composite
def logs(draw: st.DrawFn) -> str:
    users = draw(st.lists(ids, min_size=1, max_size=4, unique=True))
    items = draw(st.lists(ids, min_size=1, max_size=6, unique=True))
    rows = [
        [draw(st.sampled_from(users)), draw(st.sampled_from(items)), draw(timestamp_texts()), "t"]
        for _ in range(draw(st.integers(1, 25)))
    ]
    rows += draw(st.lists(st.sampled_from(rows), max_size=3))  # exact duplicates
    rows = draw(st.permutations(rows))  # any file order: histories come back in time order
    for _ in range(draw(st.integers(0, 2))):  # ragged rows anywhere
        ragged = draw(st.sampled_from([["u", "i"], ["u", "i", "5", "t", "extra"]]))
        rows.insert(draw(st.integers(0, len(rows))), ragged)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["user_id", "item_id", "timestamp", "title"])
    writer.writerows(rows)
    return out.getvalue()


@PROPERTY_SETTINGS
@given(text=logs())
def test_a_log_parses_like_the_reference_or_quarantines_the_row(tmp_path, text):
    path = tmp_path / "log.csv"
    path.write_text(text, encoding="utf-8", newline="")
    expected, bad = reference_log(text)
    items = [i for h in expected.values() for i in h]
    try:
        parsed = parse_input(path, max_quarantine_fraction=1.0)
    except InputFileError as exc:
        # the two whole-file errors a log can have here: no valid event, a non-positive int id
        assert not expected or any(isinstance(i, int) and i <= 0 for i in items), exc
        return
    assert by_user(parsed.histories) == expected
    assert {q.line for q in parsed.quarantined} == bad
    assert len(parsed.quarantined) == len(bad)  # one entry a bad row


@st.composite
def course_csvs(draw: st.DrawFn) -> str:
    titles = st.text(printable, max_size=12)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["user_id", "history_item_id", "history_item_title"])
    strings = draw(st.booleans())
    item = st.text(printable, min_size=1, max_size=5) if strings else st.integers(1, 10**12)
    for user in range(draw(st.integers(1, 12))):
        history = draw(st.lists(item, min_size=1, max_size=6))
        names = draw(st.lists(titles, min_size=len(history), max_size=len(history)))
        kind = draw(st.integers(0, 9))
        if kind == 0:
            writer.writerow([user, str(history)])  # ragged
        elif kind == 1:
            writer.writerow([user, str(history), str(names[:-1])])  # lengths differ
        elif kind == 2:
            writer.writerow([user, str(history)[:-1], str(names)])  # not a literal
        else:
            writer.writerow([user, str(history), str(names)])
    return out.getvalue()


def reference_course(text: str) -> tuple[dict, dict, set[int]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)
    histories, titles, bad, line = {}, {}, set(), reader.line_num + 1
    for row in reader:
        try:
            items, names = ast.literal_eval(row[1]), ast.literal_eval(row[2])
            assert len(row) == 3 and len(items) == len(names)
            assert all(valid_id(i) for i in items if isinstance(i, str))
        except (IndexError, ValueError, SyntaxError, AssertionError):
            bad.add(line)
        else:
            histories[int(row[0])] = items
            for i, name in zip(items, names, strict=True):
                titles.setdefault(i, Counter())[html.unescape(name).strip()] += 1
        line = reader.line_num + 1
    # the most frequent title of an item; a tie goes to the first seen
    return histories, {i: c.most_common(1)[0][0] for i, c in titles.items()}, bad


@PROPERTY_SETTINGS
@given(text=course_csvs())
def test_a_course_csv_keeps_every_history_as_written(tmp_path, text):
    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8", newline="")
    histories, titles, bad = reference_course(text)
    try:
        parsed = parse_input(path, max_quarantine_fraction=1.0)
    except InputFileError:
        assert not histories
        return
    assert by_user(parsed.histories) == histories  # never reordered
    assert {q.line for q in parsed.quarantined} == bad
    assert parsed.titles == titles
