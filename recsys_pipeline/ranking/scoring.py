"""Scores of a trained model: user vectors (last hidden state) against the item output rows.

Only item columns are ever scored (token ids 1..n_items), so PAD, UNK, BOS and EOS can never be
recommended.
"""

from __future__ import annotations

import numpy as np
import torch

from recsys_pipeline.histories import Histories
from recsys_pipeline.item_vocab import ItemVocab
from recsys_pipeline.ranking import Scorer
from recsys_pipeline.training.data import left_padded_inputs


def item_output_vectors(model: torch.nn.Module, vocab: ItemVocab) -> torch.Tensor:
    """(n_items, hidden) output-layer rows of the item tokens, in catalog order."""
    weight = model.get_output_embeddings().weight
    return weight[torch.from_numpy(vocab.item_token_ids).to(weight.device)].detach().float()


@torch.no_grad()
def user_vectors(
    model: torch.nn.Module,
    histories: Histories,
    vocab: ItemVocab,
    max_length: int,
    batch_size: int = 2048,
) -> torch.Tensor:
    """(n_users, hidden): the final hidden state after each user's most recent items."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(histories), batch_size):
        ids, mask = left_padded_inputs(histories.rows(start, start + batch_size), vocab, max_length)
        hidden = model.model(input_ids=ids.to(device), attention_mask=mask.to(device))
        out.append(hidden.last_hidden_state[:, -1].float())
    return torch.cat(out) if out else torch.empty(0, model.config.hidden_size)


def add_seen_bias(
    scores: torch.Tensor, histories: Histories, vocab: ItemVocab, max_length: int, bias: float
) -> torch.Tensor:
    """The model's learned bias on the items each user's input already holds (in place)."""
    recent = histories.truncated(max_length)
    columns = vocab.encode(recent.items) - 1
    rows = np.repeat(np.arange(len(recent)), recent.lengths)
    known = columns < vocab.n_items
    rows, columns = torch.from_numpy(rows[known]), torch.from_numpy(columns[known])
    scores[rows, columns] = scores[rows, columns] + bias  # a repeated item is shifted once
    return scores


def seen_bias_of(model: torch.nn.Module) -> float | None:
    bias = getattr(model, "seen_bias", None)
    return None if bias is None else float(bias.detach())


def model_scorer(model: torch.nn.Module, vocab: ItemVocab, max_length: int) -> Scorer:
    """Full-softmax logits over the item columns for each user of a batch (what the model's
    forward gives at the last position, without computing the special-token columns)."""
    items = item_output_vectors(model, vocab)
    bias = seen_bias_of(model)

    def score(batch: Histories) -> torch.Tensor:
        scores = (user_vectors(model, batch, vocab, max_length) @ items.T).cpu()
        return scores if bias is None else add_seen_bias(scores, batch, vocab, max_length, bias)

    return score


def as_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)
