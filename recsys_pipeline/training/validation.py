"""Full-ranking validation during training: the users' validation inputs and targets, ranked by
the model being trained (HR/NDCG/MRR@10)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.ranking.full_ranking import rank_users
from recsys_pipeline.ranking.scoring import model_scorer


@dataclass(frozen=True)
class RankingEvalSet(torch.utils.data.Dataset):
    """Users' input histories and the held-out item each should rank high."""

    inputs: Histories
    targets: np.ndarray
    vocab: ItemVocab

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.inputs[index], int(self.targets[index])

    def metrics(self, model: torch.nn.Module) -> dict[str, float]:
        was_training = model.training
        ranked = rank_users(model_scorer(model, self.vocab), self.inputs, self.vocab, self.targets)
        model.train(was_training)
        return ranked.metrics()
