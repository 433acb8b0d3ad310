"""Errors of the plain code turned into clean Dagster failures: a message naming the file, row or
setting, no retry (the same input fails the same way), no stack trace to read through."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg


@contextlib.contextmanager
def failing_clearly(*errors: type[Exception], hint: str = "") -> Iterator[None]:
    """Turn ``errors`` raised in the block into a ``dg.Failure`` with their message."""
    try:
        yield
    except errors as exc:
        raise dg.Failure(description=f"{exc}{hint}", allow_retries=False) from exc


def load_model(folder: Path):  # noqa: ANN201 - a SASRecForCausalLM (torch imported lazily)
    from recsys_pipeline.models.checkpoints import CheckpointError, load_checkpoint

    with failing_clearly(CheckpointError, hint=". Re-materialize the checkpoint asset."):
        return load_checkpoint(folder)
