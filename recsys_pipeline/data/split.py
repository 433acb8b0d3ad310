"""Leave-one-out split: test target = last item, validation target = the one before, training =
everything before that. Users with fewer than ``MIN_SPLIT_LENGTH`` items cannot be split and are
kept whole as training data."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recsys_pipeline.data.histories import Histories, ids_from_arrow, is_string_ids

MIN_SPLIT_LENGTH = 3
NO_TARGET = -1  # for integer ids; string ids use "" (an empty id is never valid input)
SPLIT_FILE = "sequences.parquet"

Stage = Literal["valid", "test", "next"]


@dataclass(frozen=True)
class Split:
    full: Histories  # each user's whole chronological history

    @cached_property
    def splittable(self) -> np.ndarray:
        return self.full.lengths >= MIN_SPLIT_LENGTH

    @cached_property
    def train(self) -> Histories:
        """Whole training part (no maximum-length truncation)."""
        return self.full.drop_last(2 * self.splittable)

    @cached_property
    def valid_target(self) -> np.ndarray:
        return self._target(2)

    @cached_property
    def test_target(self) -> np.ndarray:
        return self._target(1)

    def validation(self) -> tuple[Histories, np.ndarray]:
        """Inputs and targets of the users who have a validation target."""
        has = self.splittable
        return self.inputs_for("valid").rows_where(has), self.valid_target[has]

    @property
    def no_target(self) -> int | str:
        return no_target_for(self.full.items)

    def _target(self, from_end: int) -> np.ndarray:
        index = np.maximum(self.full.offsets[1:] - from_end, 0)
        if not len(self.full.items):
            return np.full(len(self.full), self.no_target)
        return np.where(self.splittable, self.full.items[index], self.no_target)

    def inputs_for(self, stage: Stage) -> Histories:
        """The history a model reads to predict the ``stage`` target ("next": the future)."""
        if stage == "valid":
            return self.train
        if stage == "test":
            return self.full.drop_last(self.splittable.astype(np.int64))
        return self.full


def no_target_for(ids: np.ndarray) -> int | str:
    return "" if is_string_ids(ids) else NO_TARGET


def write_split(split: Split, folder: Path) -> None:
    valid, test = split.valid_target, split.test_target
    table = pa.table(
        {
            "user_id": pa.array(split.full.user_ids),
            "train_item_ids": split.train.to_arrow(),
            "valid_item_id": pa.array(valid, mask=~split.splittable),
            "test_item_id": pa.array(test, mask=~split.splittable),
        }
    )
    pq.write_table(table, folder / SPLIT_FILE)


def read_split(folder: Path) -> Split:
    table = pq.read_table(folder / SPLIT_FILE)
    train = Histories.from_arrow(table.column("user_id"), table.column("train_item_ids"))
    strings = pa.types.is_string(table.schema.field("valid_item_id").type)
    missing = "" if strings else NO_TARGET
    valid, test = (
        ids_from_arrow(table.column(name).fill_null(missing))
        for name in ("valid_item_id", "test_item_id")
    )
    return Split(full=train.append(np.stack([valid, test], axis=1), skip=missing))
