"""Per-user item sequences in compressed-sparse-row form, and their Arrow list-column form.

User and item ids are the input's own: integers (int64 arrays) or strings, never renumbered;
every operation here only moves them. String ids are numpy ``StringDType`` arrays: each string
costs its own length, where a fixed-width unicode array would give every id the width of the
longest (one 10 kB URL among a million ASINs made each of them cost 40 kB).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

STRING_IDS = np.dtypes.StringDType()


def is_string_ids(ids: np.ndarray) -> bool:
    return ids.dtype == STRING_IDS


def as_ids(values: object) -> np.ndarray:
    """Ids as an array of their own kind: int64 when they are integers, else variable-width
    strings."""
    if isinstance(values, np.ndarray) and is_string_ids(values):
        return values
    if isinstance(values, list | tuple) and any(isinstance(v, str) for v in values):
        # straight to StringDType: np.asarray would first build a fixed-width array
        return np.array(values, dtype=STRING_IDS)
    array = np.asarray(values)
    if array.dtype.kind in "iu":
        return array.astype(np.int64, copy=False)
    if array.dtype.kind == "b":
        raise ValueError("ids must be integers or strings, not booleans")
    if (
        array.dtype.kind == "O"
        and len(array)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in array.tolist())
    ):
        return array.astype(np.int64)
    return array.astype(STRING_IDS) if len(array) else np.empty(0, dtype=np.int64)


def ids_from_arrow(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return as_ids(array.to_numpy(zero_copy_only=False))


@dataclass(frozen=True)
class Histories:
    """User ``user_ids[i]`` owns ``items[offsets[i]:offsets[i + 1]]``, oldest first."""

    user_ids: np.ndarray
    offsets: np.ndarray
    items: np.ndarray

    def __post_init__(self) -> None:
        if len(self.offsets) != len(self.user_ids) + 1 or self.offsets[-1] != len(self.items):
            raise ValueError("offsets do not match user_ids and items")

    def __len__(self) -> int:
        return len(self.user_ids)

    def __getitem__(self, row: int) -> np.ndarray:
        return self.items[self.offsets[row] : self.offsets[row + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def rows(self, start: int, stop: int) -> Histories:
        """Users start..stop-1 as their own table."""
        offsets = self.offsets[start : stop + 1]
        return Histories(
            self.user_ids[start:stop], offsets - offsets[0], self.items[offsets[0] : offsets[-1]]
        )

    @classmethod
    def from_lists(cls, user_ids: list, sequences: list[list]) -> Histories:
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = as_ids([i for s in sequences for i in s])
        return cls(as_ids(list(user_ids)), offsets, items)

    def to_arrow(self) -> pa.ListArray:
        return pa.ListArray.from_arrays(pa.array(self.offsets), pa.array(self.items))

    @classmethod
    def from_arrow(cls, user_ids: pa.ChunkedArray, lists: pa.ChunkedArray) -> Histories:
        combined = lists.combine_chunks()
        offsets = combined.offsets.to_numpy().astype(np.int64)
        items = ids_from_arrow(combined.values)[offsets[0] : offsets[-1]]
        return cls(ids_from_arrow(user_ids), offsets - offsets[0], items)

    def _select(
        self, starts: np.ndarray, lengths: np.ndarray, user_ids: np.ndarray | None = None
    ) -> Histories:
        """Row i becomes items[starts[i] : starts[i] + lengths[i]] (absolute positions)."""
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        index = np.arange(offsets[-1]) - np.repeat(offsets[:-1] - starts, lengths)
        return Histories(
            self.user_ids if user_ids is None else user_ids, offsets, self.items[index]
        )

    def rows_where(self, mask: np.ndarray) -> Histories:
        """The users where ``mask`` is true, in order."""
        return self.take(np.flatnonzero(mask))

    def take(self, rows: np.ndarray) -> Histories:
        """The users at ``rows`` (repeats allowed), in that order."""
        return self._select(self.offsets[:-1][rows], self.lengths[rows], self.user_ids[rows])

    def truncated(self, max_length: int) -> Histories:
        """Keep only the most recent ``max_length`` items of each user."""
        starts = np.maximum(self.offsets[:-1], self.offsets[1:] - max_length)
        return self._select(starts, self.offsets[1:] - starts)

    def drop_last(self, counts: np.ndarray) -> Histories:
        """Drop the ``counts[i]`` most recent items of user i."""
        return self._select(self.offsets[:-1], np.maximum(self.lengths - counts, 0))

    def append(self, columns: np.ndarray, skip: int) -> Histories:
        """Append row i of ``columns`` (n_users x k) to user i, leaving out cells equal to ``skip``."""
        keep = columns != skip
        lengths = self.lengths + keep.sum(axis=1)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = np.empty(offsets[-1], dtype=np.result_type(self.items, columns))
        old_position = np.arange(len(self.items)) - np.repeat(self.offsets[:-1], self.lengths)
        items[np.repeat(offsets[:-1], self.lengths) + old_position] = self.items
        extra_start = offsets[:-1] + self.lengths
        rank = np.cumsum(keep, axis=1) - 1  # position of each kept cell after the old items
        rows, cols = np.nonzero(keep)
        items[extra_start[rows] + rank[rows, cols]] = columns[rows, cols]
        return Histories(self.user_ids, offsets, items)
