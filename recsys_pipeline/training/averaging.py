"""Checkpoint averaging: the weights of the best epoch and of the epochs just before it, averaged
(Vaswani et al. averaged the last checkpoints; here the run's early stopping decides where the
window ends, so it never reaches into the epochs after the best)."""

from __future__ import annotations

from pathlib import Path

import torch

from recsys_pipeline.models.modeling_sasrec import SASRecForCausalLM
from recsys_pipeline.training.resume import checkpoint_step, complete_checkpoints


def window_up_to(stage_dir: Path, best: Path, count: int) -> list[Path]:
    """The ``count`` newest complete checkpoints in ``stage_dir`` up to ``best``, oldest first
    (fewer where the stage saved fewer)."""
    before = [
        p for p in complete_checkpoints(stage_dir) if checkpoint_step(p) <= checkpoint_step(best)
    ]
    return sorted(before, key=checkpoint_step)[-count:]


def averaged_model(checkpoints: list[Path]) -> SASRecForCausalLM:
    """One model whose floating-point weights are the mean of the checkpoints' (tied weights
    stay tied: they are one tensor in the state dict)."""
    models = [SASRecForCausalLM.from_pretrained(path) for path in checkpoints]
    average = models[-1]
    states = [model.state_dict() for model in models]
    with torch.no_grad():
        for name, tensor in average.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.stack([state[name] for state in states]).mean(0))
    return average
