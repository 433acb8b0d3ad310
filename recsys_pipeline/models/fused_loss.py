"""Cross-entropy through the output layer, in chunks, without materialising all logits.

Written here because the model adds a learned bias to the logits of the items each row has
already seen, a per-row shift that PyTorch's own chunked ``F.linear_cross_entropy`` (its bias is
one per class) cannot express. On a ~17k-item catalog the output layer is most of the training
cost: each chunk of positions computes its logits, softmax and gradients at once and drops the
logits while they are still in cache. ``bench/model_throughput.py`` measures it against
``F.linear_cross_entropy`` and against logits everywhere.

The matmuls and the softmax run in ``compute_dtype``; gradients are accumulated in float32. On
CPUs with bf16 instructions a bf16 ``compute_dtype`` runs the layer faster (1.4x with AMX, 2.9x
on a Zen 5 with AVX-512 BF16; ``models/precision.py`` decides where, ``bench/model_throughput.py``
measures it). ``label_smoothing`` is ``F.cross_entropy``'s.
"""

from __future__ import annotations

import torch

# The loss reads log(p_target); a probability below float32's smallest normal counts as that.
_TINY = torch.finfo(torch.float32).tiny


class _ChunkBuffers:
    def __init__(
        self, rows: int, weight_shape: torch.Size, dtype: torch.dtype, device: torch.device
    ) -> None:
        vocab, width = weight_shape
        self.logits = torch.empty(rows, vocab, dtype=dtype, device=device)
        self.probs = torch.empty_like(self.logits)
        self.hidden = torch.empty(rows, width, dtype=dtype, device=device)
        self.weight = torch.empty(vocab, width, dtype=dtype, device=device)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        chunk: int,
        compute_dtype: torch.dtype,
        seen_index: torch.Tensor | None,
        seen_valid: torch.Tensor | None,
        seen_bias: torch.Tensor | None,
        label_smoothing: float,
    ) -> torch.Tensor:
        n = hidden.shape[0]
        needs_hidden_grad, needs_weight_grad = ctx.needs_input_grad[:2]
        needs_bias_grad = seen_bias is not None and ctx.needs_input_grad[7]
        grad_hidden = torch.empty_like(hidden) if needs_hidden_grad else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if needs_weight_grad else None
        grad_bias = torch.zeros(1, dtype=torch.float32, device=hidden.device)
        w = weight.to(compute_dtype)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        # Written in place into buffers made once: a fresh chunk-sized tensor per chunk costs
        # page faults (measured: the float32 layer ran 1.6x faster this way, bf16 1.2x).
        buffers = _ChunkBuffers(min(chunk, n), weight.shape, compute_dtype, hidden.device)
        for start in range(0, n, chunk):
            h = hidden[start : start + chunk].to(compute_dtype)
            t = targets[start : start + chunk]
            logits, probs = buffers.logits[: len(t)], buffers.probs[: len(t)]
            torch.mm(h, w.t(), out=logits)
            if seen_bias is not None:
                index = seen_index[start : start + chunk]
                valid = seen_valid[start : start + chunk]
                # put_ on the flat view: scatter_add_ on bf16 CPU tensors copies the whole chunk
                rows = torch.arange(len(t), device=t.device)[:, None] * logits.shape[1]
                logits.view(-1).put_(
                    (rows + index).view(-1),
                    (seen_bias * valid).to(compute_dtype).view(-1),
                    accumulate=True,
                )
            # softmax accumulates in float32 for reduced-precision inputs; the private op is the
            # one with out= (no allocation per chunk), pinned in test_contracts.py
            torch._softmax(logits, 1, False, out=probs)
            log_p = probs.gather(1, t[:, None]).float().clamp_min_(_TINY).log_()
            if label_smoothing:
                # F.cross_entropy's smoothing: (1 - e) * nll + e * mean over all columns of
                # -log p = ... + e * (logsumexp - mean logit), logsumexp = z_t - log p_t
                z_t = logits.gather(1, t[:, None]).float()
                spread = z_t - log_p - logits.mean(1, keepdim=True, dtype=torch.float32)
                total += label_smoothing * spread.sum() - (1.0 - label_smoothing) * log_p.sum()
            else:
                total -= log_p.sum()
            if grad_hidden is None and grad_weight is None and not needs_bias_grad:
                continue
            # d loss / d logits = p - (1 - e) * onehot - e / columns
            probs[torch.arange(len(t), device=t.device), t] -= 1.0 - label_smoothing
            if label_smoothing:
                probs -= label_smoothing / logits.shape[1]
            if needs_bias_grad:
                grad_bias += (probs.gather(1, index).float() * valid).sum()
            if grad_hidden is not None:
                grad_hidden[start : start + chunk] = torch.mm(
                    probs, w, out=buffers.hidden[: len(t)]
                )
            if grad_weight is not None:
                if probs.dtype == grad_weight.dtype:
                    grad_weight.addmm_(probs.t(), h)
                else:
                    grad_weight += torch.mm(probs.t(), h, out=buffers.weight)
        ctx.save_for_backward(
            *(g if g is not None else torch.empty(0) for g in (grad_hidden, grad_weight)), grad_bias
        )
        ctx.n, ctx.weight_dtype = n, weight.dtype
        return total / max(n, 1)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor
    ) -> tuple:
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        scale = grad_output / max(ctx.n, 1)
        return (
            grad_hidden * scale if ctx.needs_input_grad[0] else None,
            (grad_weight * scale).to(ctx.weight_dtype) if ctx.needs_input_grad[1] else None,
            None,
            None,
            None,
            None,
            None,
            grad_bias * scale if ctx.needs_input_grad[7] else None,
            None,
        )


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    chunk: int | None = None,
    compute_dtype: torch.dtype | None = None,
    seen: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean of ``cross_entropy(hidden @ weight.T, targets, label_smoothing=label_smoothing)``
    over the rows of ``hidden``.

    ``seen`` = (index, valid, bias): before the softmax, ``bias`` is added to the logits at
    ``index[r, j]`` wherever ``valid[r, j]`` (each column valid at most once per row).

    ``chunk`` rows at a time (default: 128 on CPU, where the logits must stay in cache; 8192 on
    GPUs). ``compute_dtype`` defaults to the autocast dtype when autocast is on, else the weight's.
    """
    device = hidden.device.type
    if chunk is None:
        chunk = 128 if device == "cpu" else 8192
    if compute_dtype is None:
        compute_dtype = (
            torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
        )
    index, valid, bias = seen if seen is not None else (None, None, None)
    if not torch.is_grad_enabled():  # evaluation: the loss only, no gradients computed
        hidden, weight = hidden.detach(), weight.detach()
        bias = bias.detach() if bias is not None else None
    with torch.autocast(device, enabled=False):
        return _LinearCrossEntropy.apply(
            hidden, weight, targets, chunk, compute_dtype, index, valid, bias, label_smoothing
        )
