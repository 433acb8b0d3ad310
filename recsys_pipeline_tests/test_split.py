from __future__ import annotations

import numpy as np

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.split import NO_TARGET, SPLIT_FILE, Split, read_split, write_split


def sample() -> Histories:
    return Histories.from_lists([10, 11, 12, 13], [[1, 2, 3, 4, 5], [6, 7], [8, 9, 1], [2]])


def test_leave_one_out():
    split = Split(full=sample())
    assert [split.train[i].tolist() for i in range(4)] == [[1, 2, 3], [6, 7], [8], [2]]
    assert split.valid_target.tolist() == [4, NO_TARGET, 9, NO_TARGET]
    assert split.test_target.tolist() == [5, NO_TARGET, 1, NO_TARGET]
    assert split.splittable.tolist() == [True, False, True, False]


def test_inputs_for_each_stage():
    split = Split(full=sample())
    assert split.inputs_for("valid")[0].tolist() == [1, 2, 3]
    assert split.inputs_for("test")[0].tolist() == [1, 2, 3, 4]
    assert split.inputs_for("test")[1].tolist() == [6, 7]  # too short: whole history
    assert split.inputs_for("next")[2].tolist() == [8, 9, 1]


def test_validation_keeps_only_users_with_a_validation_target():
    inputs, targets = Split(full=sample()).validation()
    assert [inputs[i].tolist() for i in range(len(inputs))] == [[1, 2, 3], [8]]
    assert targets.tolist() == [4, 9]


def test_round_trip_through_parquet(tmp_path):
    split = Split(full=sample())
    write_split(split, tmp_path)
    back = read_split(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [SPLIT_FILE]  # a pure split, no model setting
    assert np.array_equal(back.full.items, split.full.items)
    assert np.array_equal(back.full.offsets, split.full.offsets)
    assert np.array_equal(back.full.user_ids, split.full.user_ids)


def test_histories_truncate_keeps_most_recent():
    h = sample().truncated(2)
    assert [h[i].tolist() for i in range(4)] == [[4, 5], [6, 7], [9, 1], [2]]


def test_histories_drop_last_append_and_select():
    h = sample()
    dropped = h.drop_last(np.array([2, 5, 0, 1]))
    assert [dropped[i].tolist() for i in range(4)] == [[1, 2, 3], [], [8, 9, 1], []]
    grown = dropped.append(np.array([[7, -1], [-1, -1], [4, 5], [6, -1]]), skip=-1)
    assert [grown[i].tolist() for i in range(4)] == [[1, 2, 3, 7], [], [8, 9, 1, 4, 5], [6]]
    picked = h.rows_where(np.array([False, True, True, False]))
    assert picked.user_ids.tolist() == [11, 12] and picked[1].tolist() == [8, 9, 1]
    window = h.rows(1, 3)
    assert window.user_ids.tolist() == [11, 12] and window[0].tolist() == [6, 7]
