"""served_model: which checkpoint is served (served.json), the one place faiss_index, predictions,
evaluation and the online service learn it from."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from recsys_pipeline.assets.failures import failing_clearly
from recsys_pipeline.assets.versions import (
    Inputs,
    content_version,
    published,
    reading,
    unchanged,
)
from recsys_pipeline.automation import FOLLOW_CHECKPOINTS
from recsys_pipeline.data.artifacts import ArtifactError
from recsys_pipeline.models.served import ServedModel
from recsys_pipeline.resources.storage import RecsysStorage
from recsys_pipeline.settings import Settings


@dg.asset(
    group_name="serving",
    kinds={"json"},
    # the served model is the DPO one or the SFT one it was compared with
    deps=["dpo_checkpoint", "sft_checkpoint"],
    automation_condition=FOLLOW_CHECKPOINTS,
)
def served_model(context: dg.AssetExecutionContext, storage: RecsysStorage) -> dg.MaterializeResult:
    """The checkpoint dpo_checkpoint's choice serves, named by asset and version, with the
    validation NDCG@10 the choice was made by. Its data version is that of the choice itself:
    a new SFT model that DPO has not been compared with yet changes nothing downstream."""
    store = storage.artifacts()
    with reading(context, storage, "dpo_checkpoint") as inputs:
        served = ServedModel.from_choice(inputs["dpo_checkpoint"])
    with failing_clearly(ArtifactError, hint=": re-materialize dpo_checkpoint"):
        store.version(served.checkpoint, served.version)  # the checkpoint is still there
    version = content_version(context, served.to_json())
    if (same := unchanged(context, storage, version)) is not None:
        return same
    with store.writing("served_model") as folder:
        served.write(folder)
    context.log.info(f"serving {served.model}: {served.checkpoint} version {served.version}")
    return published(
        context,
        store,
        version,
        {
            "model": served.model,
            "checkpoint": served.checkpoint,
            "checkpoint_version": served.version,
            "rule": served.rule,
            **{f"valid_ndcg@10/{name}": value for name, value in served.valid_ndcg.items()},
        },
    )


@contextlib.contextmanager
def served_checkpoint(storage: RecsysStorage, inputs: Inputs) -> Iterator[tuple[ServedModel, Path]]:
    """The served model's record and its checkpoint folder, pinned for the block (``inputs``
    must hold served_model)."""
    served = ServedModel.read(inputs["served_model"])
    with contextlib.ExitStack() as stack:
        # only a checkpoint gone missing gets the hint, not an error of the caller's block
        with failing_clearly(ArtifactError, hint=": re-materialize dpo_checkpoint"):
            pinned = storage.artifacts().pinned(served.checkpoint, served.version)
            folder = stack.enter_context(pinned)
        yield served, folder


def definitions(_settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[served_model])
