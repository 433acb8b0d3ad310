"""Fault injection: killed steps, killed writes, full and read-only disks, concurrent runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest

from recsys_pipeline.data.artifacts import ArtifactError, ArtifactStore
from recsys_pipeline_tests.conftest import REPO, tiny_rows, write_rows
from recsys_pipeline_tests.helpers import (
    cli_env,
    failure_message,
    materialization_metadata,
    materialize_command,
    run_graph,
)


def dagster_materialize(selection: str, env: dict, config: dict | None = None) -> subprocess.Popen:
    # own process group, so a kill reaches the step subprocesses too
    return subprocess.Popen(
        materialize_command(selection, config),
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def complete_checkpoints(work) -> list[int]:
    return sorted(
        int(p.parent.name.split("-")[1])
        for p in work.glob("*/stage2/checkpoint-*/trainer_state.json")
    )


def test_sigkill_mid_training_resumes_from_the_last_checkpoint(tmp_path, resources_for):
    csv = write_rows(tmp_path / "in.csv", tiny_rows(n_users=600, n_items=60))
    long_sft = {"stage1_epochs": 0, "stage2_epochs": 15, "patience": 100, "batch_size": 32}
    run_graph(
        resources_for(csv),
        selection="raw_csv*",
        sft_checkpoint={"config": {"stage1_epochs": 0, "stage2_epochs": 1}},
    )
    work = tmp_path / "data" / "work" / "sft_checkpoint"
    process = dagster_materialize(
        "sft_checkpoint", cli_env(tmp_path, csv), {"ops": {"sft_checkpoint": {"config": long_sft}}}
    )
    deadline = time.monotonic() + 300
    # a checkpoint written to its end (the Trainer writes trainer_state.json last); killing at
    # the first checkpoint folder would often cut that one off mid-save, leaving none to resume
    while not complete_checkpoints(work):
        assert process.poll() is None, process.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()  # waits, and closes its pipe
    killed = complete_checkpoints(work)

    result = run_graph(
        resources_for(csv), selection="sft_checkpoint", sft_checkpoint={"config": long_sft}
    )
    meta = materialization_metadata(result, "sft_checkpoint")
    assert meta["resumed_from"].split("checkpoint-")[1] in {str(k) for k in killed}
    report = json.loads(
        (tmp_path / "data" / "artifacts" / "sft_checkpoint" / "training_report.json").read_text()
    )
    epochs = [e["epoch"] for e in report["epochs"]]
    assert epochs == sorted(set(epochs)) and epochs[-1] == 15  # continued, not restarted
    from recsys_pipeline.models.checkpoints import load_checkpoint

    assert (
        load_checkpoint(tmp_path / "data" / "artifacts" / "sft_checkpoint").config.model_type
        == "sasrec"
    )


WRITER = """
import sys, time
from pathlib import Path
from recsys_pipeline.data.artifacts import ArtifactStore
with ArtifactStore(Path(sys.argv[1])).writing("thing") as folder:
    (folder / "value.txt").write_text("half")
    print("writing", flush=True)
    time.sleep(60)
"""


def test_a_kill_during_an_artifact_write_leaves_the_previous_artifact(tmp_path):
    store = ArtifactStore(tmp_path)
    with store.writing("thing") as folder:
        (folder / "value.txt").write_text("complete")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert writer.stdout.readline().strip() == b"writing"
    writer.send_signal(signal.SIGKILL)
    writer.communicate()
    assert (store.path("thing") / "value.txt").read_text() == "complete"
    with store.writing("thing") as folder:  # the next writer is not blocked by the dead one
        (folder / "value.txt").write_text("next")
    assert (store.path("thing") / "value.txt").read_text() == "next"
    leftovers = [
        p for p in (tmp_path / ".versions" / "thing").iterdir() if p.name.startswith(".tmp")
    ]
    assert leftovers == []


@pytest.fixture
def small_disk(tmp_path):
    """A 96 KiB tmpfs as the data folder (needs root and mount; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here (not root, or no mount permission)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_is_a_clear_error_and_no_partial_artifact(tmp_path, small_disk, resources_for):
    from recsys_pipeline.resources import RecsysStorage

    small = write_rows(tmp_path / "small.csv", tiny_rows(n_users=30))
    big = write_rows(tmp_path / "big.csv", tiny_rows(n_users=6000, n_items=3000))
    resources = {**resources_for(small), "storage": RecsysStorage(data_dir=str(small_disk))}
    assert run_graph(resources, selection="raw_csv").success
    before = (small_disk / "artifacts" / "raw_csv" / "users.parquet").read_bytes()
    resources = {**resources_for(big), "storage": RecsysStorage(data_dir=str(small_disk))}
    result = run_graph(resources, selection="raw_csv", raise_on_error=False)
    assert "no space left on the device" in failure_message(result)
    assert (small_disk / "artifacts" / "raw_csv" / "users.parquet").read_bytes() == before
    assert not [
        p
        for p in (small_disk / "artifacts" / ".versions" / "raw_csv").iterdir()
        if p.name.startswith(".tmp")
    ]


def test_read_only_artifacts_are_a_clear_error(tmp_path, small_disk, resources_for):
    from recsys_pipeline.resources import RecsysStorage

    csv = write_rows(tmp_path / "small.csv", tiny_rows(n_users=30))
    resources = {**resources_for(csv), "storage": RecsysStorage(data_dir=str(small_disk))}
    assert run_graph(resources, selection="raw_csv").success
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = run_graph(resources, selection="raw_csv", raise_on_error=False)
    assert "read-only file system" in failure_message(result)
    assert (small_disk / "artifacts" / "raw_csv" / "users.parquet").is_file()


def test_two_runs_of_the_same_asset_at_once_serialise_cleanly(tmp_path):
    csv = write_rows(tmp_path / "in.csv", tiny_rows(n_users=3000, n_items=500))
    env = cli_env(tmp_path, csv)
    # An instance that exists already, as after any first run: two processes racing to create a
    # fresh instance's SQLite tables is Dagster's start-up, not what this test is about.
    dg.DagsterInstance.from_config(env["DAGSTER_HOME"]).dispose()
    runs = [dagster_materialize("raw_csv", env) for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0].decode() for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    from recsys_pipeline.data.input_formats import read_histories

    artifacts = tmp_path / "data" / "artifacts"
    assert len(read_histories(artifacts / "raw_csv")) == 3000
    versions = [p for p in (artifacts / ".versions" / "raw_csv").iterdir()]
    assert len(versions) == 2 and not [p for p in versions if p.name.startswith(".tmp")]


def test_artifact_errors_are_not_swallowed(tmp_path):
    with pytest.raises(ArtifactError, match="materialize the 'nothing' asset first"):
        ArtifactStore(tmp_path).path("nothing")


def test_an_input_that_disappears_after_its_observation_fails_clearly(tmp_path, resources_for):
    from recsys_pipeline_tests.helpers import observe_sources

    csv = write_rows(tmp_path / "in.csv", tiny_rows())
    resources = resources_for(csv)
    with dg.DagsterInstance.ephemeral() as instance:
        observe_sources(resources, instance)  # seen with its bytes...
        csv.unlink()  # ...and gone before raw_csv reads it
        result = run_graph(resources, selection="raw_csv", instance=instance, raise_on_error=False)
    assert f"{csv}: file not found" in failure_message(result)
    assert not (tmp_path / "data" / "artifacts" / "raw_csv").exists()  # nothing published


def test_a_slow_training_keeps_its_tokenizer_while_raw_csv_plus_republishes_it_twice(
    tmp_path, resources_for
):
    from recsys_pipeline.data.artifacts import ArtifactStore
    from recsys_pipeline.data.vocab import load_vocab

    rows = tiny_rows(n_users=600, n_items=60)
    csv = write_rows(tmp_path / "in.csv", rows)
    env = cli_env(tmp_path, csv)
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    resources = resources_for(csv)
    assert run_graph(resources, selection="*item_embeddings", instance=instance).success
    store = ArtifactStore(tmp_path / "data" / "artifacts")
    read = store.path("tokenizer").name
    slow = {"stage1_epochs": 0, "stage2_epochs": 12, "patience": 100, "batch_size": 32}
    training = dagster_materialize(
        "sft_checkpoint", env, {"ops": {"sft_checkpoint": {"config": slow}}}
    )
    work = tmp_path / "data" / "work" / "sft_checkpoint"
    deadline = time.monotonic() + 300
    while not list(work.glob("*/stage2/checkpoint-*")):  # training: its inputs are pinned
        assert training.poll() is None, training.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # two new inputs, each with one more item (a new catalog, a new tokenizer)
    for extra in (61, 62):
        rows = [*rows, [10_000 + extra, f"[{extra}, 1, 2]", "['x', 'y', 'z']"]]
        write_rows(csv, rows)
        assert run_graph(resources, selection="raw_csv+", instance=instance).success
    assert store.path("tokenizer").name != read
    assert read in store.pinned_versions("tokenizer")  # still being read, so still there
    output = training.communicate(timeout=600)[0].decode()
    assert training.returncode == 0, output[-3000:]
    # the model was trained on, and saved with, the 60-item tokenizer it started from
    artifacts = tmp_path / "data" / "artifacts"
    checkpoint = json.loads((artifacts / "sft_checkpoint" / "config.json").read_text())
    assert checkpoint["vocab_size"] == 60 + 4
    assert load_vocab(artifacts / "tokenizer").n_items == 62
    event = instance.get_latest_materialization_event(dg.AssetKey("sft_checkpoint"))
    assert event.asset_materialization.metadata["reused"].value is False
    assert store.pinned_versions("tokenizer") == set()
