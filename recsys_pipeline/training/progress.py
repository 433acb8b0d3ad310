"""A Trainer's optimizer steps as progress lines in the training's log (SFT and DPO)."""

from __future__ import annotations

import time
from collections.abc import Callable

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from recsys_pipeline.monitoring.progress import INTERVAL_S, Progress


class StepProgress(TrainerCallback):
    """``label: 120 / 1,000 steps (12.0%), 2.5 steps/s, about 5m 52s left`` at most every
    ``interval`` seconds and when training ends. A run resumed from a checkpoint counts from the
    checkpoint's step, and its rate from the steps it trains itself."""

    def __init__(
        self,
        log: Callable[[str], None],
        label: str,
        interval: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log, self.label, self.interval, self.clock = log, label, interval, clock
        self.progress: Progress | None = None

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: object,
    ) -> None:
        # the Trainer has computed max_steps and restored a resumed global_step by now
        self.progress = Progress(
            self.log,
            self.label,
            state.max_steps,
            "steps",
            self.interval,
            done=state.global_step,
            clock=self.clock,
        )

    def on_step_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: object,
    ) -> None:
        self.progress.update(state.global_step - self.progress.done)

    def on_train_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: object,
    ) -> None:
        self.progress.finish()
