"""Where a killed training run picks up: the newest complete Trainer checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

from transformers.trainer import TRAINER_STATE_NAME

from recsys_pipeline.training import distributed


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-<step>`` in ``folder`` that was written to the end.

    The Trainer writes ``trainer_state.json`` last, so a folder without it was cut off mid-save
    (the process was killed): the main process removes it, and the one before it is used.
    """
    return max(complete_checkpoints(folder), key=checkpoint_step, default=None)


def complete_checkpoints(folder: Path) -> list[Path]:
    """Every ``checkpoint-<step>`` in ``folder`` written to the end; the main process removes
    the others."""
    complete = []
    for path in folder.glob("checkpoint-*"):
        if (path / TRAINER_STATE_NAME).is_file():
            complete.append(path)
        elif distributed.is_main():
            shutil.rmtree(path, ignore_errors=True)
    return complete


def checkpoint_step(path: Path) -> int:
    return int(path.name.split("-")[1])
