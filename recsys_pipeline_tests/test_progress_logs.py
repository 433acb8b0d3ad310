"""Through Dagster, on one run of the whole graph on tiny data: each long step's closing progress
line is in its step's log, and sft_checkpoint's metadata says where its TensorBoard run is."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
import pytest

from recsys_pipeline_tests.conftest import tiny_rows, write_rows
from recsys_pipeline_tests.helpers import materialization_metadata, run_graph, step_logs
from recsys_pipeline_tests.test_serving import FAST_SFT, resources


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """(root, result, {step: its log messages})."""
    root = tmp_path_factory.mktemp("progress")
    write_rows(root / "in.csv", tiny_rows())
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_graph(resources(root), instance=instance, sft_checkpoint=FAST_SFT)
        logs = step_logs(instance, result.run_id)
    assert result.success
    return root, result, logs


@pytest.mark.parametrize(
    ("step", "closing"),
    [
        ("item_embeddings", "text encoding: 40 / 40 texts (100.0%), "),
        ("wiki_enrichment", "fact extraction: 40 / 40 items (100.0%), "),  # rules, offline
        ("sft_checkpoint", "SFT stage 1: "),
        ("sft_checkpoint", "SFT stage 2: "),
        ("dpo_checkpoint", "DPO: "),
        ("evaluation", "evaluation (4 models, test and validation targets): "),
        ("predictions", "top-10 recommendations: 60 / 60 users (100.0%), "),
    ],
)
def test_each_long_step_logs_its_progress_to_the_end(graph, step, closing):
    _, _, logs = graph
    lines = [line for line in logs.get(step, []) if line.startswith(closing)]
    assert lines, (step, logs.get(step))
    assert "(100.0%), " in lines[-1] and ", took " in lines[-1]


def test_evaluation_counts_every_user_with_each_model_on_both_targets(graph):
    _, result, logs = graph
    users = materialization_metadata(result, "evaluation")["n_users"]
    total = f"{2 * 4 * users:,}"
    assert any(f": {total} / {total} users (100.0%)" in line for line in logs["evaluation"])


def test_sft_checkpoint_says_where_its_tensorboard_run_is(graph):
    root, result, _ = graph
    metadata = materialization_metadata(result, "sft_checkpoint")
    # the published version folder: the path stays right when a newer version is published
    version_folder = Path(urlparse(metadata["dagster/uri"]).path)
    assert version_folder.name == metadata["artifact_version"]
    assert version_folder.is_relative_to(root / "data" / "artifacts")
    assert metadata["tensorboard_logdir"] == str(version_folder / "tensorboard")
    assert list((version_folder / "tensorboard").rglob("events.out.tfevents.*"))
    assert "tracker_runs" not in metadata  # no MLflow run
