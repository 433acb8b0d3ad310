from __future__ import annotations

import subprocess

from recsys_pipeline_tests.conftest import REPO
from recsys_pipeline_tests.helpers import cli_env, materialize_command, run_graph


def published(artifacts) -> dict:
    return {p.name: p.resolve() for p in artifacts.iterdir() if not p.name.startswith(".")}


def test_materialize_raw_csv_plus_from_the_cli(tmp_path, tiny_csv):
    done = subprocess.run(
        materialize_command("raw_csv+"),
        cwd=tmp_path,
        env=cli_env(tmp_path, tiny_csv),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stderr
    artifacts = tmp_path / "data" / "artifacts"
    # raw_csv+ = raw_csv and its direct children
    assert set(published(artifacts)) == {"raw_csv", "sequences", "tokenizer"}
    assert (artifacts / "tokenizer" / "tokenizer.json").is_file()


def test_dpo_checkpoint_plus_rebuilds_exactly_the_served_side(tmp_path, tiny_csv, resources_for):
    run_graph(
        resources_for(tiny_csv), sft_checkpoint={"config": {"stage1_epochs": 1, "stage2_epochs": 1}}
    )
    artifacts = tmp_path / "data" / "artifacts"
    before = published(artifacts)
    done = subprocess.run(
        materialize_command("dpo_checkpoint+"),
        cwd=REPO,
        env=cli_env(tmp_path, tiny_csv),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    after = published(artifacts)
    rebuilt = {name for name in after if after[name] != before.get(name)}
    assert rebuilt == {"dpo_checkpoint", "faiss_index", "predictions", "evaluation"}
