"""sequences: the leave-one-out split, and the checks that keep it honest."""

import dagster as dg
import numpy as np

from recsys_pipeline.assets.metadata import schema
from recsys_pipeline.assets.versions import data_version, published, reading
from recsys_pipeline.automation import ON_UPSTREAM_CHANGE
from recsys_pipeline.data.input_formats import read_histories
from recsys_pipeline.data.split import MIN_SPLIT_LENGTH, Split, read_split, write_split
from recsys_pipeline.resources.storage import RecsysStorage
from recsys_pipeline.settings import Settings


@dg.asset(
    group_name="data",
    kinds={"parquet"},
    deps=["raw_csv"],
    automation_condition=ON_UPSTREAM_CHANGE,
)
def sequences(context: dg.AssetExecutionContext, storage: RecsysStorage) -> dg.MaterializeResult:
    """Leave-one-out split per user: train part, validation target, test target."""
    store = storage.artifacts()
    with reading(context, storage, "raw_csv") as inputs:
        split = Split(full=read_histories(inputs["raw_csv"]))
        with store.writing("sequences") as folder:
            write_split(split, folder)
    return published(
        context,
        store,
        data_version(context, inputs, {}),
        {
            "dagster/row_count": len(split.full),
            "dagster/column_schema": schema(
                user_id="int64",
                train_item_ids="list<int64>",
                valid_item_id="int64 (null: too short)",
                test_item_id="int64 (null: too short)",
            ),
            "users": len(split.full),
            "users_split": int(split.splittable.sum()),
            "users_too_short_train_only": int((~split.splittable).sum()),
            "min_length_to_split": MIN_SPLIT_LENGTH,
            "train_interactions": int(split.train.lengths.sum()),
            "valid_targets": int(split.splittable.sum()),
            "test_targets": int(split.splittable.sum()),
            "longest_history": int(split.full.lengths.max()),
        },
    )


@dg.asset_check(asset=sequences, blocking=True, additional_deps=["raw_csv"])
def targets_not_in_training_part(
    context: dg.AssetCheckExecutionContext, storage: RecsysStorage
) -> dg.AssetCheckResult:
    """No validation or test target sits in its user's training part, unless the raw input shows
    the user really bought that item more than once."""
    with reading(context, storage, "raw_csv", "sequences") as inputs:
        raw = read_histories(inputs["raw_csv"])
        split = read_split(inputs["sequences"])
    leaks, repeats = 0, 0
    for row in np.flatnonzero(split.splittable):
        history = set(split.train[row].tolist())
        for target in (split.valid_target[row], split.test_target[row]):
            if target in history:
                if np.count_nonzero(raw[row] == target) > 1:
                    repeats += 1
                else:
                    leaks += 1
    return dg.AssetCheckResult(
        passed=leaks == 0,
        metadata={"leaked_targets": leaks, "targets_that_are_repeat_purchases": repeats},
    )


@dg.asset_check(asset=sequences, blocking=True, additional_deps=["raw_csv"])
def split_counts_add_up(
    context: dg.AssetCheckExecutionContext, storage: RecsysStorage
) -> dg.AssetCheckResult:
    """train + valid + test interactions equal the input's, and every user is kept."""
    with reading(context, storage, "raw_csv", "sequences") as inputs:
        raw = read_histories(inputs["raw_csv"])
        split = read_split(inputs["sequences"])
    parts = int(split.train.lengths.sum()) + 2 * int(split.splittable.sum())
    same_users = np.array_equal(raw.user_ids, split.full.user_ids)
    return dg.AssetCheckResult(
        passed=bool(parts == len(raw.items) and same_users),
        metadata={"input_interactions": len(raw.items), "split_interactions": parts},
    )


def definitions(_settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[sequences],
        asset_checks=[targets_not_in_training_part, split_counts_add_up],
    )
