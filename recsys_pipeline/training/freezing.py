"""Stage-1 training freezes the text-initialised item rows of the (tied) embedding matrix."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def freeze_rows(parameter: nn.Parameter, rows: torch.Tensor) -> RemovableHandle:
    """Zero the gradient of ``rows`` of ``parameter`` (every use of it: input and tied output).

    With a zero gradient from the first step, Adam's moments stay zero and the rows do not move;
    decoupled weight decay would still shrink them, so the parameter must not decay
    (:func:`decay_parameter_names` leaves embeddings out).
    """
    keep = torch.ones(parameter.shape[0], 1, dtype=parameter.dtype, device=parameter.device)
    keep[rows] = 0
    return parameter.register_hook(lambda grad: grad * keep.to(grad.dtype))


def decay_parameter_names(model: nn.Module) -> list[str]:
    """The parameters AdamW decays: matrices, except embeddings and the output layer (tied to
    the item embeddings, or their untied counterpart)."""
    embeddings = {
        id(module.weight) for module in model.modules() if isinstance(module, nn.Embedding)
    }
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None:
        embeddings.add(id(head.weight))
    return [
        name
        for name, parameter in model.named_parameters()
        if parameter.ndim >= 2 and id(parameter) not in embeddings
    ]
