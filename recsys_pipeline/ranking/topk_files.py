"""The top-k file format of predictions.csv and test_top10_<model>.csv: ``user_id,item_id`` with
``item_id`` a Python list literal of item ids, best first, one row per user."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np


def write_top_k_csv(path: Path, user_ids: np.ndarray, top_items: np.ndarray) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id"])
        for user, items in zip(user_ids.tolist(), top_items.tolist(), strict=True):
            writer.writerow([user, str(items)])


def read_top_k_csv(path: Path) -> tuple[np.ndarray, list[list]]:
    """(user ids, their lists), ids of the kinds they were written with."""
    from recsys_pipeline.data.input_formats import text_ids

    user_ids, lists = [], []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            user_ids.append(row["user_id"])
            lists.append(ast.literal_eval(row["item_id"]))
    return text_ids(user_ids), lists
