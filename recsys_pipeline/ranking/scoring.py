"""Scores of a trained model: its next-item logits after each user's most recent items.

The model's config says how many recent items it reads (``max_history_length``); every scoring
path reads that number here. Only item columns are scored (token ids 1..n_items), so PAD, UNK,
BOS and EOS can never be recommended.
"""

from __future__ import annotations

import numpy as np
import torch

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.models.inputs import left_padded_inputs
from recsys_pipeline.models.modeling_sasrec import seen_tokens
from recsys_pipeline.ranking.full_ranking import Scorer


def model_inputs(
    model: torch.nn.Module, histories: Histories, vocab: ItemVocab
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded [BOS, most recent items] as the model reads them, on the model's device."""
    device = next(model.parameters()).device
    ids, mask = left_padded_inputs(histories, vocab, model.config.max_history_length)
    return ids.to(device), mask.to(device)


def item_output_vectors(model: torch.nn.Module, vocab: ItemVocab) -> torch.Tensor:
    """(n_items, hidden) output-layer rows of the item tokens, in catalog order."""
    weight = model.get_output_embeddings().weight
    return weight[torch.from_numpy(vocab.item_token_ids).to(weight.device)].detach().float()


@torch.no_grad()
def last_hidden(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(batch, hidden) float32 user vectors of ``model_inputs``: the final hidden state after
    each row's most recent item, which the item output rows score."""
    return model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, -1].float()


@torch.no_grad()
def user_vectors(
    model: torch.nn.Module, histories: Histories, vocab: ItemVocab, batch_size: int = 2048
) -> torch.Tensor:
    """(n_users, hidden): the final hidden state after each user's most recent items."""
    model.eval()
    out = []
    for start in range(0, len(histories), batch_size):
        ids, mask = model_inputs(model, histories.rows(start, start + batch_size), vocab)
        out.append(last_hidden(model, ids, mask))
    return torch.cat(out) if out else torch.empty(0, model.config.hidden_size)


def seen_bias_of(model: torch.nn.Module) -> float | None:
    bias = getattr(model, "seen_bias", None)
    return None if bias is None else float(bias.detach())


def seen_columns(
    model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, vocab: ItemVocab
) -> np.ndarray:
    """(batch, width) item columns that the model's seen-item bias shifts at the last position
    (its own rule, ``seen_tokens``), each once; -1 pads."""
    index, valid = seen_tokens(ids, mask, model.config)
    columns = vocab.columns_of_tokens(index[:, -1].cpu().numpy())
    return np.where(valid[:, -1].cpu().numpy(), columns, -1)


def model_scorer(model: torch.nn.Module, vocab: ItemVocab) -> Scorer:
    """The model's own next-item logits (seen-item bias included) over the item columns."""

    @torch.no_grad()
    def score(batch: Histories) -> torch.Tensor:
        model.eval()
        ids, mask = model_inputs(model, batch, vocab)
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits[:, -1]
        return logits[:, vocab.item_token_slice].float().cpu()

    return score
