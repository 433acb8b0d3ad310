from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from recsys_pipeline_tests.conftest import REPO


def dagster_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    dagster = Path(sys.executable).with_name("dagster")
    return subprocess.run(
        [str(dagster), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_materialize_raw_csv_plus_from_the_cli(tmp_path, tiny_csv):
    data = tmp_path / "data"
    env = {
        **os.environ,
        "RECSYS_DATA_DIR": str(data),
        "RECSYS_RAW_CSV": str(tiny_csv),
        "RECSYS_PROFILE": "cpu",
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "PYTHONPATH": str(REPO),
    }
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    done = dagster_cli(
        "asset",
        "materialize",
        "-m",
        "recsys_pipeline.definitions",
        "--select",
        "raw_csv+",
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stderr
    artifacts = data / "artifacts"
    # raw_csv+ = raw_csv and its direct children
    assert {p.name for p in artifacts.iterdir() if not p.name.startswith(".")} == {
        "raw_csv",
        "sequences",
        "tokenizer",
    }
    assert (artifacts / "tokenizer" / "tokenizer.json").is_file()


def test_dpo_checkpoint_plus_rebuilds_exactly_the_served_side(tmp_path, tiny_csv, resources_for):
    from recsys_pipeline_tests.helpers import run_graph

    data = tmp_path / "data"
    fast = {"config": {"stage1_epochs": 1, "stage2_epochs": 1}}
    run_graph(resources_for(tiny_csv), sft_checkpoint=fast)
    artifacts = data / "artifacts"
    before = {p.name: p.resolve() for p in artifacts.iterdir() if not p.name.startswith(".")}
    env = {
        **os.environ,
        "RECSYS_DATA_DIR": str(data),
        "RECSYS_RAW_CSV": str(tiny_csv),
        "RECSYS_PROFILE": "cpu",
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "PYTHONPATH": str(REPO),
    }
    (tmp_path / "dagster_home").mkdir()
    done = dagster_cli(
        "asset",
        "materialize",
        "-m",
        "recsys_pipeline.definitions",
        "--select",
        "dpo_checkpoint+",
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    after = {p.name: p.resolve() for p in artifacts.iterdir() if not p.name.startswith(".")}
    rebuilt = {name for name in after if after[name] != before.get(name)}
    assert rebuilt == {"dpo_checkpoint", "faiss_index", "predictions", "evaluation"}
