"""Stage-1 training freezes the text-initialised item rows of the (tied) embedding matrix."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def freeze_rows(parameter: nn.Parameter, rows: torch.Tensor) -> RemovableHandle:
    """Zero the gradient of ``rows`` of ``parameter`` (every use of it: input and tied output).

    With a zero gradient from the first step, Adam's moments stay zero and the rows do not move;
    decoupled weight decay would still shrink them, so the parameter must sit in a group without
    weight decay (``parameter_groups`` does that for embeddings).
    """
    keep = torch.ones(parameter.shape[0], 1, dtype=parameter.dtype, device=parameter.device)
    keep[rows] = 0
    return parameter.register_hook(lambda grad: grad * keep.to(grad.dtype))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: no weight decay on embeddings, norms and other 1-D parameters."""
    embeddings = {
        id(module.weight) for module in model.modules() if isinstance(module, nn.Embedding)
    }
    decay, no_decay = [], []
    for parameter in model.parameters():
        if not parameter.requires_grad:
            continue
        if parameter.ndim < 2 or id(parameter) in embeddings:
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
