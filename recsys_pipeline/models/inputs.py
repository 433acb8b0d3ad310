"""Model input for scoring: BOS + a user's most recent items, left-padded."""

from __future__ import annotations

import numpy as np
import torch

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.vocab import ItemVocab


def left_padded_inputs(
    histories: Histories, vocab: ItemVocab, max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """[BOS, most recent <= max_length items], left-padded, for scoring the next item."""
    recent = histories.truncated(max_length)
    lengths = recent.lengths + 1
    width = int(lengths.max()) if len(lengths) else 1
    input_ids = np.full((len(recent), width), vocab.pad_token_id, dtype=np.int64)
    rows = np.repeat(np.arange(len(recent)), recent.lengths)
    columns = (
        width
        - np.repeat(recent.lengths, recent.lengths)
        + (np.arange(len(recent.items)) - np.repeat(recent.offsets[:-1], recent.lengths))
    )
    input_ids[rows, columns] = vocab.encode(recent.items)
    input_ids[np.arange(len(recent)), width - lengths] = vocab.bos_token_id
    ids = torch.from_numpy(input_ids)
    return ids, (ids != vocab.pad_token_id).long()
