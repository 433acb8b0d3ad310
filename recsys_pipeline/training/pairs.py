"""DPO preference pairs: prompt = a user's history before the target, chosen = the target (the
last item of the training part), rejected = a mined negative."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recsys_pipeline.data.histories import Histories, ids_from_arrow
from recsys_pipeline.data.split import Split
from recsys_pipeline.data.vocab import ItemVocab, item_token
from recsys_pipeline.training.negatives import MiningSettings, mine_negatives

PAIRS_FILE = "pairs.parquet"
TRL_FILE = "trl_pairs.parquet"


class PairsFileError(ValueError):
    pass


@dataclass(frozen=True)
class PreferencePairs:
    user_ids: np.ndarray
    prompts: Histories  # item ids, the most recent max_length - 1 at most
    chosen: np.ndarray  # item ids
    rejected: np.ndarray  # item ids
    kind: np.ndarray  # hard / easy / random

    def __len__(self) -> int:
        return len(self.chosen)


def build_pairs(
    split: Split, vocab: ItemVocab, vectors: np.ndarray, max_length: int, settings: MiningSettings
) -> PreferencePairs:
    """One positive per user whose training part has at least two items."""
    train = split.train
    eligible = train.lengths >= 2
    rows = np.flatnonzero(eligible)
    last = train.offsets[1:][eligible] - 1
    positives = vocab.columns_of_items(train.items[last])
    exclusions = [vocab.columns_of_items(split.full[r]) for r in rows]
    mined = mine_negatives(vectors, positives, exclusions, settings)
    prompts = train.rows_where(eligible).drop_last(np.ones(len(rows), dtype=np.int64))
    # prompt + completion = at most max_length items after BOS: the SFT input shape
    prompts = prompts.truncated(max_length - 1)
    take = mined.pair_row
    return PreferencePairs(
        user_ids=prompts.user_ids[take],
        prompts=prompts.take(take),
        chosen=train.items[last][take],
        rejected=vocab.items_of_columns(mined.negative),
        kind=mined.kind,
    )


def write_pairs(pairs: PreferencePairs, folder: Path) -> None:
    """Item ids (pairs.parquet) and the TRL prompt/chosen/rejected text form (trl_pairs.parquet)."""
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(pairs.user_ids),
                "prompt_item_ids": pairs.prompts.to_arrow(),
                "chosen_item_id": pa.array(pairs.chosen),
                "rejected_item_id": pa.array(pairs.rejected),
                "negative_kind": pa.array(pairs.kind, pa.string()),
            }
        ),
        folder / PAIRS_FILE,
    )
    prompts = ["".join(item_token(i) for i in pairs.prompts[r].tolist()) for r in range(len(pairs))]
    pq.write_table(
        pa.table(
            {
                "prompt": pa.array(prompts, pa.string()),
                "chosen": pa.array([item_token(i) for i in pairs.chosen.tolist()], pa.string()),
                "rejected": pa.array([item_token(i) for i in pairs.rejected.tolist()], pa.string()),
            }
        ),
        folder / TRL_FILE,
    )


def read_pairs(folder: Path, vocab: ItemVocab) -> PreferencePairs:
    """Pairs from pairs.parquet, validated: a clear error naming the row and field otherwise."""
    path = Path(folder) / PAIRS_FILE
    table = pq.read_table(path)
    prompts = Histories.from_arrow(table.column("user_id"), table.column("prompt_item_ids"))
    chosen = ids_from_arrow(table.column("chosen_item_id"))
    rejected = ids_from_arrow(table.column("rejected_item_id"))
    same = np.flatnonzero(chosen == rejected)
    if len(same):
        raise PairsFileError(
            f"{path}, row {same[0]}, field 'rejected_item_id': equals chosen_item_id "
            f"({chosen[same[0]]}); {len(same)} such rows"
        )
    for name, ids in (
        ("chosen_item_id", chosen),
        ("rejected_item_id", rejected),
        ("prompt_item_ids", prompts.items),
    ):
        unknown = np.flatnonzero(~vocab.contains(ids))
        if len(unknown):
            row = (
                unknown[0]
                if name != "prompt_item_ids"
                else int(np.searchsorted(prompts.offsets, unknown[0], "right") - 1)
            )
            raise PairsFileError(
                f"{path}, row {row}, field '{name}': item id {ids[unknown[0]]} is not in the "
                f"vocabulary ({len(unknown)} unknown ids in this column)"
            )
    return PreferencePairs(
        user_ids=ids_from_arrow(table.column("user_id")),
        prompts=prompts,
        chosen=chosen,
        rejected=rejected,
        kind=np.array(table.column("negative_kind").to_pylist(), dtype=str),
    )
