"""Training examples from user histories: causal windows of BOS + items, and their collation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.vocab import ItemVocab

IGNORE = -100


class Window(NamedTuple):
    tokens: np.ndarray  # [BOS, items...]
    continues: bool  # True: the first item is context carried over from the window after it


def training_windows(train: Histories, vocab: ItemVocab, max_length: int) -> list[Window]:
    """Causal-LM examples covering every training target once.

    A history of up to ``max_length`` items is one example ``[BOS, i1, ..., in]`` in which every
    item is a label (i1 is predicted from BOS alone). Longer histories are cut into windows that
    end at n, n - max_length + 1, ...: each later window starts with the previous window's first
    item as context only, so no target is dropped and none is counted twice.
    """
    tokens = vocab.encode(train.items)
    windows = []
    for row in range(len(train)):
        items = tokens[train.offsets[row] : train.offsets[row + 1]]
        end = len(items)
        while end > 0:
            start = max(0, end - max_length)
            window = np.concatenate([[vocab.bos_token_id], items[start:end]])
            windows.append(Window(window, continues=start > 0))
            if start == 0:
                break
            end = start + 1
    return windows


@dataclass(frozen=True)
class WindowDataset(torch.utils.data.Dataset):
    windows: list[Window]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        window = self.windows[index]
        labels = window.tokens.copy()
        labels[0] = IGNORE  # BOS is never a target
        if window.continues:
            labels[1] = IGNORE
        return {"input_ids": window.tokens, "labels": labels}

    def real_tokens(self) -> int:
        return sum(len(w.tokens) for w in self.windows)

    def targets(self) -> int:
        return sum(len(w.tokens) - 1 - w.continues for w in self.windows)


def collate(examples: list[dict[str, np.ndarray]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch to its longest example (positions come from the attention mask)."""
    width = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        input_ids[row, :n] = torch.from_numpy(example["input_ids"])
        labels[row, :n] = torch.from_numpy(example["labels"])
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
