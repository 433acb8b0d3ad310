"""Loading upstream artifacts in asset bodies, with their errors turned into clean failures."""

from pathlib import Path

import dagster as dg


def load_model(folder: Path):  # noqa: ANN201 - a SASRecForCausalLM (torch imported lazily)
    from recsys_pipeline.checkpoints import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(folder)
    except CheckpointError as exc:
        raise dg.Failure(
            description=f"{exc}. Re-materialize the checkpoint asset.", allow_retries=False
        ) from exc
